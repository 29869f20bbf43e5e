//! novadock: turns an OpenStack cloud into one where Docker runs as a Nova hypervisor.
//!
//! The modules mirror the pipeline: inventory → playbook → facts → plan → apply → report.

pub mod assets;
pub mod boottime;
pub mod cli;
pub mod cloud;
pub mod engine;
pub mod facts;
mod help;
pub mod image;
pub mod ini;
pub mod inventory;
pub mod openstack;
pub mod plan;
pub mod playbook;
pub mod precache;
pub mod prefetch;
pub mod printer;
pub mod render;
pub mod report;
pub mod shell;
pub mod steps;
pub mod transport;
pub mod yaml;
