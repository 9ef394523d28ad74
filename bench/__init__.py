"""Benchmarks: loopback load generator, the peer comparison, memory under load. Each prints JSON."""
