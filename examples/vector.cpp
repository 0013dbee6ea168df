// A std::vector sorted, summed and searched with the standard algorithms.
#include <algorithm>
#include <iostream>
#include <numeric>
#include <vector>

int main() {
    std::vector<int> values{42, 7, 19, 3, 88, 23, 61};
    std::sort(values.begin(), values.end());

    std::cout << "sorted:";
    for (int v : values) std::cout << ' ' << v;
    std::cout << '\n';

    const int sum = std::accumulate(values.begin(), values.end(), 0);
    std::cout << "sum: " << sum << ", mean: " << static_cast<double>(sum) / values.size() << '\n';

    const bool has23 = std::binary_search(values.begin(), values.end(), 23);
    std::cout << "contains 23: " << std::boolalpha << has23 << '\n';
    return 0;
}
