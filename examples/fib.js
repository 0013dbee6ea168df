// Fibonacci numbers, exactly: BigInt keeps fib(90) and beyond precise.
'use strict';

function fib(n) {
  let [a, b] = [0n, 1n];
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}

for (const n of [10, 20, 50, 90]) {
  console.log(`fib(${n}) = ${fib(n)}`);
}
