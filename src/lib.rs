//! novadock: turns an OpenStack cloud into one where Docker runs as a Nova hypervisor.
//!
//! The modules mirror the pipeline: inventory → playbook → facts → plan → apply → report.

mod assets;
mod boottime;
pub mod cli;
mod cloud;
mod distro;
mod engine;
mod facts;
mod glance;
mod help;
mod image;
pub mod ini;
mod inventory;
mod openstack;
mod ops;
mod plan;
mod playbook;
mod precache;
mod prefetch;
mod printer;
mod remote;
mod render;
mod report;
mod shell;
mod spool;
mod steps;
mod transport;
mod yaml;
