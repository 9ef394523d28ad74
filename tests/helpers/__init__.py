"""What tests and benchmarks share: the live server, test images, metrics and the deployment's programs.

Plain modules, imported as ``tests.helpers.<module>`` from tests and from bench/; the conftest.py
files hold only fixtures.
"""
