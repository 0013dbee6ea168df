#!/usr/bin/env bash
# Counts lines, words and the most frequent words of a text, with shell builtins and coreutils only.
set -euo pipefail

text='the quick brown fox jumps over the lazy dog
the dog sleeps and the fox runs
a fox is quick and a dog is lazy'

lines=0
words=0
while IFS= read -r line; do
  lines=$((lines + 1))
  set -- $line
  words=$((words + $#))
done <<< "$text"

echo "lines: $lines"
echo "words: $words (wc says $(printf '%s\n' "$text" | wc -w))"
echo "most frequent:"
printf '%s\n' "$text" | tr -s ' ' '\n' | sort | uniq -c | sort -k1,1nr -k2 | head -n 3
