"""Live checks: DNS, TCP, TLS and HTTP, every socket opened by one dialer."""
