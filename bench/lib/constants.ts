// Values the benchmark servers and the seeding code must agree on.

/** Destination wallet of every benchmark purchase (any 32-byte key works in the sandbox). */
export const BENCH_DESTINATION = 'E8otxw1CVX9bfyddKu3ZB3BVLa4VVF9J7CTPdnUwT9jR';

/** Key secret of every benchmark kit (hex of 32 bytes), fixed so that seeded data files match the kit's keys. */
export const BENCH_KEY_SECRET = 'a3c1f07be24d98561e0f7a2b9c4d3e8f1a6b5c0d9e8f7a6b5c4d3e2f1a0b9c8d';
