"""Primes below 100 with the sieve of Eratosthenes; reads nothing, prints them and their count."""


def primes_below(limit: int) -> list[int]:
    is_prime = [True] * limit
    is_prime[0:2] = [False, False]
    for n in range(2, int(limit**0.5) + 1):
        if is_prime[n]:
            is_prime[n * n :: n] = [False] * len(range(n * n, limit, n))
    return [n for n, prime in enumerate(is_prime) if prime]


primes = primes_below(100)
print(" ".join(map(str, primes)))
print(f"{len(primes)} primes below 100")
