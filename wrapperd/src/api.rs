//! STUB — to be replaced: the HTTP API (SPEC §6) over the Unix socket and TCP.
