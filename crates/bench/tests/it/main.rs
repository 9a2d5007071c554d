//! Functional tests of the harness's machinery on real sockets: the cases run briefly and
//! must produce correct, error-free results. Timings are the harness's business, not
//! these tests'.

mod support;

mod load;
mod rotation;
mod sse;
