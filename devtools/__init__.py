"""Development tools shared by the tests and the benchmarks (not part of the package).

`imagegen` writes generated datasets, `imagenet` gives the shared real photos and the
real MobileNet classifier, `emulator` runs a GCS emulator on 127.0.0.1, and
`proxy` puts latency and faults between a client and it.
"""
