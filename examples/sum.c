/* Sums 1..100 two ways (a loop and Gauss's formula) and checks they agree. */
#include <stdio.h>

static long sum_to(long n) {
    long total = 0;
    for (long i = 1; i <= n; i++) total += i;
    return total;
}

int main(void) {
    const long n = 100;
    long looped = sum_to(n);
    long formula = n * (n + 1) / 2;
    printf("sum of 1..%ld = %ld (formula: %ld)\n", n, looped, formula);
    return looped == formula ? 0 : 1;
}
