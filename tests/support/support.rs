//! Real components shared by every test binary: one HTTP server (`http`), one SMTP server
//! process (`smtp`), one reader for `.eml` files (`mail`), two forwarding proxies
//! (`proxy`), the demo files (`demo`) and the built
//! binary (`bin`). Loaded by each binary's root with `#[path]`; nothing here asserts behaviour.
// Each binary uses part of this; what one leaves unused is still used by another.
#![allow(dead_code, unused_imports)]

pub mod bin;
pub mod demo;
pub mod http;
pub mod hub;
pub mod mail;
pub mod postgres;
pub mod proxy;
pub mod real_hub;
pub mod receiver;
pub mod smtp;
pub mod synapse;
