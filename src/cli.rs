//! The command line: `check`, `plan`, `apply`, `boot-time`, `completions`, `help`.

use crate::engine::Mode;
use crate::ops::{self, Conn};
use crate::prefetch;
use crate::printer;
use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Exit codes: 0 success (plan: no changes), 1 error, 2 plan has changes pending.
Docs: `novadock help` lists the manual's topics (inventory, playbook, steps, …);
`novadock help TOPIC` prints one.";

#[derive(Debug, Parser)]
#[command(
    name = "novadock",
    version = crate::steps::novadock_binary::VERSION,
    disable_help_subcommand = true,
    about = "Run Docker as a Nova hypervisor next to KVM: plan and apply an OpenStack cloud's config over SSH",
    after_help = AFTER_HELP
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate an inventory and playbook offline (no host is contacted).
    #[command(
        after_help = "Example:\n  novadock check -i inventories/lab.yml -p playbooks/bootstrap.yml\n\nExit codes: 0 valid, 1 invalid."
    )]
    Check(Common),
    /// Show what apply would change, with diffs; changes nothing.
    #[command(
        after_help = "Example:\n  novadock plan -i inventories/lab.yml --limit cmp3\n\nExit codes: 0 no changes, 2 changes pending, 1 error."
    )]
    Plan(RunArgs),
    /// Make the changes the plan shows (asks first on a terminal unless --yes).
    #[command(
        after_help = "Example:\n  novadock apply -i inventories/lab.yml --yes\n\nExit codes: 0 applied (or nothing to do), 1 error or refused."
    )]
    Apply(ApplyArgs),
    /// Load every Glance image of container format docker onto every live Docker compute host.
    #[command(
        after_help = "Example:\n  novadock prefetch -i inventories/lab.yml --dry-run\n\nHosts: members of the aggregate `docker_aggregate` (default docker) whose nova-compute is up;\nthe controller is the first host of group `controllers`.\n\nExit codes: 0 every host done (or, with --dry-run, planned), 1 a host failed or an error."
    )]
    Prefetch(PrefetchArgs),
    /// Glance images of container format docker.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Boot servers through Nova, time each from the create request to ACTIVE, delete them.
    #[command(
        name = "boot-time",
        after_help = "Examples:\n  novadock boot-time -i inventories/lab.yml --flavor d1.large --image bt-big:latest --count 10\n  novadock boot-time -i inventories/lab.yml --flavor d1.large --image bt-big:latest --compare-prefetch --host cmp1\n\nServers are named bt-<run id>-NN and deleted at the end, also on failure and Ctrl-C.\nExit codes: 0 measured (and cleaned up), 1 error, 130 interrupted."
    )]
    BootTime(BootTimeArgs),
    /// Print shell completions.
    #[command(
        after_help = "Example:\n  novadock completions bash > /etc/bash_completion.d/novadock"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// The manual, built in: list its topics, or print one.
    #[command(after_help = "Examples:\n  novadock help\n  novadock help steps")]
    Help {
        /// A topic, or a command (the same as COMMAND --help).
        topic: Option<String>,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// Inventory file (YAML).
    #[arg(short, long, value_name = "INVENTORY")]
    inventory: PathBuf,
    /// Playbook file; when not on disk, the embedded playbook of that name is used. Without
    /// it, the embedded playbooks/bootstrap.yml (never one in the current directory).
    #[arg(short, long, value_name = "PLAYBOOK")]
    playbook: Option<PathBuf>,
    /// Only these hosts and groups (comma separated).
    #[arg(short, long, value_name = "HOSTS")]
    limit: Option<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Write one JSON document on stdout (human output stays on stderr).
    #[arg(long)]
    json: bool,
    /// How many hosts to work on at once.
    #[arg(long, default_value_t = 32, value_name = "N")]
    forks: usize,
    /// Stop every host at the first failure.
    #[arg(long)]
    fail_fast: bool,
    #[command(flatten)]
    conn: ConnArgs,
    /// Print SSH round trips per host.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Args)]
struct ConnArgs {
    /// Keep SSH connections open this many seconds after the run, for the next run (0: close).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    persist: u64,
    /// Trust and record host keys not yet in known_hosts (a changed key is still refused).
    #[arg(long)]
    accept_new_host_keys: bool,
    /// SSH connect timeout.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    connect_timeout: u64,
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Upload a docker image to Glance (container format docker, disk format raw), named as
    /// inside the tarball; an active image with that name and content is left alone.
    #[command(
        after_help = "Examples:\n  novadock image add -i inventories/lab.yml nginx:1.27 --from-host cmp1\n  novadock image add -i inventories/lab.yml app:2 --file app-2.tar --replace\n\nExit codes: 0 uploaded or already there, 1 error."
    )]
    Add(ImageAddArgs),
}

#[derive(Debug, Args)]
struct ImageAddArgs {
    /// Inventory file (YAML); the controller is the first host of group `controllers`.
    #[arg(short, long, value_name = "INVENTORY")]
    inventory: PathBuf,
    /// The image, REPO[:TAG]: its Glance name, and the name inside the tarball.
    name: String,
    /// `docker save NAME` on this inventory host.
    #[arg(long, value_name = "HOST", conflicts_with = "file")]
    from_host: Option<String>,
    /// A `docker save` tarball on this machine.
    #[arg(long, value_name = "TAR")]
    file: Option<PathBuf>,
    /// An image of that name with other content exists: upload this one as its new version.
    #[arg(long)]
    replace: bool,
    /// Visible to every project (default: shared, the owner's).
    #[arg(long)]
    public: bool,
    /// Write one JSON document on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Args)]
struct PrefetchArgs {
    /// Inventory file (YAML).
    #[arg(short, long, value_name = "INVENTORY")]
    inventory: PathBuf,
    /// Only these hosts and groups (comma separated), as for plan.
    #[arg(short, long, value_name = "HOSTS")]
    limit: Option<String>,
    /// Print the (host, image) pairs that would be loaded, and why; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove images prefetched earlier that are gone from Glance (never one a container uses).
    #[arg(long)]
    prune: bool,
    /// How many hosts to work on at once [default: inventory var prefetch_forks, else 4].
    /// (`--parallel` is its old name.)
    #[arg(long, alias = "parallel", value_name = "N")]
    forks: Option<usize>,
    /// Where hosts get image data [default: inventory var prefetch_source, else nova with
    /// novadock's own driver (docker_driver_source bundled), glance with any other].
    #[arg(long, value_enum)]
    source: Option<prefetch::Source>,
    /// Which hosts [default: inventory var prefetch_hosts, else aggregate].
    #[arg(long, value_enum)]
    hosts: Option<prefetch::HostsFrom>,
    /// Write one JSON document on stdout (human output stays on stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Apply without asking.
    #[arg(short, long)]
    yes: bool,
}

#[derive(Debug, Args)]
struct BootTimeArgs {
    /// Inventory file (YAML); Nova is reached from the first host of group `controllers`.
    #[arg(short, long, value_name = "INVENTORY")]
    inventory: PathBuf,
    /// Flavor name or id.
    #[arg(long, value_name = "FLAVOR")]
    flavor: String,
    /// Glance image name or id.
    #[arg(long, value_name = "IMAGE")]
    image: String,
    /// Servers to boot.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    count: u16,
    /// Servers booting at once (the default, 1, times each boot on its own).
    #[arg(long, default_value_t = 1, value_name = "C", value_parser = clap::value_parser!(u16).range(1..=1000), conflicts_with = "compare_prefetch")]
    concurrency: u16,
    /// Boot on this compute host (its nova-compute name); the scheduler still checks it.
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
    /// Give each server a port on this Neutron network (name or id); without it, servers
    /// boot with no network.
    #[arg(long, value_name = "NETWORK")]
    network: Option<String>,
    /// Also boot with the image removed from --host first (fetched from Glance), and print
    /// the ratio; one server at a time.
    #[arg(long, requires = "host")]
    compare_prefetch: bool,
    /// Seconds a server may take to become ACTIVE.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
    /// Write one JSON document on stdout (human output stays on stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

pub fn main() -> ExitCode {
    printer::trace(|| "start".into());
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            printer::error(&e);
            ExitCode::from(1)
        }
    };
    printer::trace(|| {
        let hwm = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .map(str::to_string)
            })
            .unwrap_or_default();
        format!("end; {hwm}")
    });
    code
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "novadock",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Help { topic } => help(topic.as_deref()),
        Command::Check(c) => ops::check::run(&c.into()),
        Command::Plan(r) => ops::converge::run(&r.into(), Mode::Plan, false, &ops::runtime()?),
        Command::Apply(a) => {
            ops::converge::run(&a.run.into(), Mode::Apply, a.yes, &ops::runtime()?)
        }
        Command::Prefetch(p) => ops::prefetch::run(&p.into(), &ops::runtime()?),
        Command::Image(ImageCommand::Add(a)) => ops::image::run(&a.into(), &ops::runtime()?),
        Command::BootTime(b) => crate::boottime::run(
            crate::boottime::Options {
                inventory: b.inventory,
                flavor: b.flavor,
                image: b.image,
                count: b.count.into(),
                concurrency: b.concurrency.into(),
                host: b.host,
                network: b.network,
                json: b.json,
                compare_prefetch: b.compare_prefetch,
                timeout: b.timeout,
                persist_secs: b.conn.persist,
                connect_timeout_secs: b.conn.connect_timeout,
                accept_new_host_keys: b.conn.accept_new_host_keys,
            },
            &ops::runtime()?,
        ),
    }
}

// The command line's values, handed to the ops modules.

impl From<ConnArgs> for Conn {
    fn from(c: ConnArgs) -> Conn {
        Conn {
            persist: c.persist,
            accept_new_host_keys: c.accept_new_host_keys,
            connect_timeout: c.connect_timeout,
        }
    }
}

impl From<Common> for ops::select::Input {
    fn from(c: Common) -> Self {
        ops::select::Input {
            inventory: c.inventory,
            playbook: c.playbook,
            limit: c.limit,
        }
    }
}

impl From<RunArgs> for ops::converge::Run {
    fn from(r: RunArgs) -> Self {
        ops::converge::Run {
            common: r.common.into(),
            json: r.json,
            forks: r.forks,
            fail_fast: r.fail_fast,
            conn: r.conn.into(),
            verbose: r.verbose,
        }
    }
}

impl From<ImageAddArgs> for ops::image::Add {
    fn from(a: ImageAddArgs) -> Self {
        ops::image::Add {
            inventory: a.inventory,
            name: a.name,
            from_host: a.from_host,
            file: a.file,
            replace: a.replace,
            public: a.public,
            json: a.json,
            conn: a.conn.into(),
        }
    }
}

impl From<PrefetchArgs> for ops::prefetch::Prefetch {
    fn from(a: PrefetchArgs) -> Self {
        ops::prefetch::Prefetch {
            inventory: a.inventory,
            limit: a.limit,
            dry_run: a.dry_run,
            prune: a.prune,
            forks: a.forks,
            source: a.source,
            hosts: a.hosts,
            json: a.json,
            conn: a.conn.into(),
        }
    }
}

fn help(topic: Option<&str>) -> Result<ExitCode> {
    let commands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    match crate::help::resolve(topic, &commands)? {
        crate::help::Help::Page(text) => crate::printer::page(text),
        crate::help::Help::Topics(text) => crate::printer::page(&text),
        // Exactly `novadock COMMAND --help`: clap renders it as a "display help" outcome.
        crate::help::Help::Command(name) => {
            let _ = Cli::try_parse_from(["novadock", &name, "--help"])
                .err()
                .context("clap accepted `--help` as a command line")?
                .print();
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
