"""Property-based fuzzing of every RPC the server binds (hypothesis).

`make test` runs the bounded, derandomized "ci" profile; `make fuzz` the "long" one
(FORGE_FUZZ_PROFILE=long; FORGE_FUZZ_EXAMPLES=N sets the examples per RPC of either).
"""
