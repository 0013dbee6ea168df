"""The smallest honest program: greets, and says which Python ran it."""
import platform

print(f"Hello from Python {platform.python_version()}!")
