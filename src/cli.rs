//! The command line: `check`, `plan`, `apply`, `boot-time`, `completions`, `help`.

use crate::assets::{self, Templates};
use crate::cloud::Cloud;
use crate::engine::{Engine, Mode, Options, build_step};
use crate::facts::Facts;
use crate::inventory::{Host, Inventory};
use crate::playbook::Playbook;
use crate::prefetch;
use crate::printer::{self, hinted};
use crate::render::Renderer;
use crate::report;
use crate::steps::{PlanCx, openstack_aggregate};
use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
    /// Only these hosts (inventory or nova-compute names, comma separated).
    #[arg(short, long, value_name = "HOSTS")]
    limit: Option<String>,
    /// Print the (host, image) pairs that would be loaded, and why; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove images prefetched earlier that are gone from Glance (never one a container uses).
    #[arg(long)]
    prune: bool,
    /// Hosts worked on at once [default: inventory var prefetch_parallel, else 4].
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
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
        Command::Check(c) => check(&c),
        Command::Plan(r) => execute(&r, Mode::Plan, false),
        Command::Apply(a) => execute(&a.run, Mode::Apply, a.yes),
        Command::Prefetch(p) => run_prefetch(&p),
        Command::Image(ImageCommand::Add(a)) => run_image_add(&a),
        Command::BootTime(b) => crate::boottime::run(crate::boottime::Options {
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
        }),
    }
}

fn help(topic: Option<&str>) -> Result<ExitCode> {
    let commands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    // A reader's `| head` closing the pipe is not an error worth a panic.
    let out = |text: &str| {
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
    };
    match crate::help::resolve(topic, &commands)? {
        crate::help::Help::Page(text) => out(text),
        crate::help::Help::Topics(text) => out(&text),
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

struct Loaded {
    inventory: Arc<Inventory>,
    playbook: Arc<Playbook>,
    renderer: Arc<Renderer>,
    targets: Vec<(Host, Vec<usize>)>,
    limit: Option<Arc<BTreeSet<String>>>,
}

const DEFAULT_PLAYBOOK: &str = "playbooks/bootstrap.yml";

fn load(c: &Common) -> Result<Loaded> {
    let inventory = Inventory::load(&c.inventory).context("invalid inventory")?;
    printer::add_secrets(&inventory.secrets);
    // A playbook runs as root on every host: only the one shipped inside this binary unless
    // the operator names a file (a `playbooks/` in the current directory is not the product's).
    let loaded = match &c.playbook {
        Some(p) => Playbook::load(p),
        None => Playbook::embedded(std::path::Path::new(DEFAULT_PLAYBOOK)),
    };
    let playbook = loaded.map_err(|e| match e {
        crate::playbook::PlaybookError::NotFound(_) => hinted(
            e.to_string(),
            format!(
                "embedded playbooks: {}",
                assets::embedded_playbook_names().join(", ")
            ),
        ),
        e => anyhow::Error::new(e).context("invalid playbook"),
    })?;
    let renderer = Renderer::new(
        Arc::new(Templates::for_playbook(playbook.disk_path.as_deref())),
        playbook.vars.clone(),
    )
    .with_inventory(&inventory);
    if playbook.require_limit && c.limit.is_none() {
        return Err(hinted(
            format!("{} runs only on the hosts being added", playbook.source),
            "name them with --limit, e.g. --limit cmp3 (the controller's steps for them are included)",
        ));
    }
    let limit: Option<BTreeSet<String>> = match &c.limit {
        Some(l) => Some(
            inventory
                .select(l)
                .with_context(|| format!("--limit {l}"))?
                .iter()
                .map(|h| h.name.clone())
                .collect(),
        ),
        None => None,
    };
    let mut per_host: Vec<(Host, Vec<usize>)> = inventory
        .hosts
        .iter()
        .map(|h| (h.clone(), vec![]))
        .collect();
    for (i, step) in playbook.steps.iter().enumerate() {
        let hosts = inventory.select_steps(&step.hosts);
        // Under --limit, a controller step that manages limited hosts (their aggregate
        // membership) runs too, for those hosts only.
        // (`for_hosts:`, or the members of an aggregate or a known_hosts file).
        let managed = step.for_hosts.as_deref().or(match step.kind {
            "openstack_aggregate" | "known_hosts" => {
                openstack_aggregate::member_pattern(&step.args)
            }
            _ => None,
        });
        let related = limit.as_ref().is_some_and(|l| {
            managed.is_some_and(|p| {
                inventory
                    .select_steps(p)
                    .iter()
                    .any(|m| l.contains(&m.name))
            })
        });
        for h in hosts {
            if !(related || limit.as_ref().is_none_or(|l| l.contains(&h.name))) {
                continue;
            }
            if let Some(entry) = per_host.iter_mut().find(|(x, _)| x.name == h.name) {
                entry.1.push(i);
            }
        }
    }
    let targets = per_host
        .into_iter()
        .filter(|(_, steps)| !steps.is_empty())
        .collect();
    Ok(Loaded {
        inventory: Arc::new(inventory),
        playbook: Arc::new(playbook),
        renderer: Arc::new(renderer),
        targets,
        limit: limit.map(Arc::new),
    })
}

fn check(c: &Common) -> Result<ExitCode> {
    let l = load(c)?;
    let mut problems = Vec::new();
    let empty = Facts::default();
    for (host, ids) in &l.targets {
        let vars = l.renderer.context(host);
        for &i in ids {
            let step = &l.playbook.steps[i];
            let what = format!("step {} ({}) on {}", i + 1, step.name, host.name);
            // As apply does: a step whose condition is false is not built (its arguments
            // may name variables that only its source kind defines, e.g. docker_driver_path).
            if let Some(w) = &step.when {
                match l.renderer.condition(w, &vars) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        problems.push(format!("{what}: {e}"));
                        continue;
                    }
                }
            }
            let built = build_step(
                &l.renderer,
                &l.inventory,
                l.limit.as_deref(),
                step.kind,
                &step.args,
                step.loop_over.as_ref(),
                &vars,
                false,
            );
            // Planning a template against empty facts is offline and pure: it renders the
            // template. Other kinds need the host's facts to plan at all.
            let planned = built.and_then(|s| {
                if step.kind != "template" {
                    return Ok(());
                }
                s.plan(&PlanCx {
                    facts: &empty,
                    renderer: &l.renderer,
                    vars: &vars,
                })
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
            if let Err(e) = planned {
                problems.push(format!("{what}: {e}"));
            }
        }
        for h in &l.playbook.handlers {
            let r = build_step(
                &l.renderer,
                &l.inventory,
                l.limit.as_deref(),
                h.kind,
                &h.args,
                None,
                &vars,
                true,
            );
            if let Err(e) = r {
                problems.push(format!("handler {} on {}: {e}", h.name, host.name));
            }
        }
    }
    if !problems.is_empty() {
        problems.dedup();
        let n = problems.len();
        return Err(anyhow::anyhow!(problems.join("\n")).context(format!(
            "{} has {n} problem{}",
            l.playbook.source,
            if n == 1 { "" } else { "s" }
        )));
    }
    for (i, step) in l.playbook.steps.iter().enumerate() {
        if l.inventory.select_steps(&step.hosts).is_empty() {
            printer::say(&format!(
                "{} step {} ({}): hosts `{}` matches no host in this inventory",
                printer::yellow("warning:"),
                i + 1,
                step.name,
                step.hosts
            ));
        }
    }
    printer::say(&format!(
        "{} {} and {} are valid: {}, {}, {}",
        printer::green("ok:"),
        c.inventory.display(),
        l.playbook.source,
        plural(l.targets.len(), "host"),
        plural(l.playbook.steps.len(), "step"),
        plural(l.playbook.handlers.len(), "handler")
    ));
    Ok(ExitCode::SUCCESS)
}

fn execute(r: &RunArgs, mode: Mode, yes: bool) -> Result<ExitCode> {
    let l = load(&r.common)?;
    if l.targets.is_empty() {
        return Err(hinted(
            "no host matches: nothing to do",
            "check --limit and the steps' `hosts:` patterns",
        ));
    }
    if mode == Mode::Apply && !yes && !std::io::stdin().is_terminal() {
        return Err(hinted(
            "refusing to apply without confirmation: stdin is not a terminal",
            "run `novadock plan` to review, then `novadock apply --yes`",
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let engine = Engine {
        inventory: l.inventory.clone(),
        playbook: l.playbook.clone(),
        renderer: l.renderer.clone(),
        targets: l.targets.clone(),
    };
    let mut opts = Options {
        mode,
        forks: r.forks,
        fail_fast: r.fail_fast,
        persist_secs: r.conn.persist,
        accept_new_host_keys: r.conn.accept_new_host_keys,
        connect_timeout_secs: r.conn.connect_timeout,
        run_id: run_id(),
        planned_facts: None,
        limit: l.limit.clone(),
        keep_facts: false,
        once_hosts: None,
    };
    let go = |opts: &Options| {
        let pb = printer::progress(engine.targets.len() as u64);
        let reports = rt.block_on(engine.run(opts, &pb));
        pb.finish_and_clear();
        reports
    };
    if mode == Mode::Apply && !yes {
        // Interactive: show the plan, ask, then apply exactly that plan; every write checks
        // that its file is still what the plan saw.
        let planned = go(&Options {
            mode: Mode::Plan,
            keep_facts: true,
            ..opts.clone()
        });
        report::human(Mode::Plan, &l.playbook, &planned);
        let s = report::summarize(&planned);
        if s.failed > 0 {
            return Err(anyhow::anyhow!(
                "the plan failed on {} host(s); nothing was applied",
                s.failed_hosts
            ));
        }
        if s.changed == 0 {
            if r.json {
                printer::json(&report::json(Mode::Apply, &planned));
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !confirm("Apply these changes?")? {
            return Err(anyhow::anyhow!("apply cancelled; nothing was changed"));
        }
        opts.mode = Mode::Apply;
        // Each run_once step runs where the plan showed it (the facts are that host's).
        opts.once_hosts = Some(Arc::new(
            planned
                .iter()
                .flat_map(|r| {
                    r.steps
                        .iter()
                        .filter(|s| l.playbook.steps[s.index].run_once)
                        .map(|s| (s.index, r.name.clone()))
                })
                .collect(),
        ));
        opts.planned_facts = Some(Arc::new(
            planned
                .into_iter()
                .filter_map(|r| Some((r.name, r.facts?)))
                .collect(),
        ));
    }
    let reports = go(&opts);
    report::human(mode, &l.playbook, &reports);
    if r.verbose {
        for h in &reports {
            printer::say(&format!("{}: {} SSH round trips", h.name, h.round_trips));
        }
    }
    if r.json {
        printer::json(&report::json(mode, &reports));
    }
    let s = report::summarize(&reports);
    Ok(if s.failed > 0 {
        ExitCode::from(1)
    } else if mode == Mode::Plan && s.changed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Why `image add` and `prefetch` need a controller.
const CONTROLLER_HINT: &str =
    "the controller (where Glance and the credentials are) must be in group `controllers`";

fn spool_dir(what: &str) -> Result<PathBuf> {
    crate::image::spool_dir(&format!("{what}-{}", run_id())).map_err(anyhow::Error::msg)
}

fn run_image_add(a: &ImageAddArgs) -> Result<ExitCode> {
    let cloud = Cloud::load(&a.inventory, CONTROLLER_HINT)?;
    let source = match (&a.from_host, &a.file) {
        (Some(h), None) => {
            crate::image::Source::Host(cloud.inventory.host(h).cloned().ok_or_else(|| {
                anyhow::anyhow!("--from-host {h}: not a host of {}", a.inventory.display())
            })?)
        }
        (None, Some(f)) => crate::image::Source::File(f.clone()),
        _ => {
            return Err(hinted(
                "say where the image comes from",
                "--from-host HOST (docker save there) or --file TAR (a docker save tarball)",
            ));
        }
    };
    let cfg = crate::image::AddConfig {
        controller: cloud.controller.clone(),
        auth: cloud.auth()?,
        connect: cloud.connect_options(
            a.conn.persist,
            a.conn.connect_timeout,
            a.conn.accept_new_host_keys,
        ),
        name: a.name.clone(),
        source,
        replace: a.replace,
        public: a.public,
        spool_dir: spool_dir("image")?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let r = rt.block_on(crate::image::add(&cfg)).map_err(|e| match e {
        crate::image::ImageError::Exists { .. } => hinted(
            e.to_string(),
            "--replace uploads it as a new version under the same name (prefetch reloads it everywhere)",
        ),
        crate::image::ImageError::NameMismatch { .. } => hinted(
            e.to_string(),
            "give the name the image has (`docker image ls`), or `docker tag` it first",
        ),
        e => anyhow::Error::new(e).context(format!("image add {}", a.name)),
    })?;
    let what = match r.action {
        "unchanged" => printer::dim(&format!(
            "= unchanged: {} is in Glance with this content ({})",
            r.name, r.id
        )),
        action => printer::green(&format!(
            "~ {action}: {} ({}, {}, sha512 {}…){}",
            r.name,
            r.id,
            report::bytes(r.size),
            &r.sha512[..16],
            if r.removed.is_empty() {
                String::new()
            } else {
                format!("; removed the older {}", r.removed.join(", "))
            }
        )),
    };
    printer::say(&what);
    if a.json {
        printer::json(&serde_json::to_value(&r).context("cannot encode the result")?);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_prefetch(a: &PrefetchArgs) -> Result<ExitCode> {
    let cloud = Cloud::load(&a.inventory, CONTROLLER_HINT)?;
    let source = match (a.source, cloud.var_or_default("prefetch_source")?.as_str()) {
        (Some(s), _) => s,
        (None, "glance") => prefetch::Source::Glance,
        (None, "registry") => prefetch::Source::Registry,
        (None, "nova") => prefetch::Source::Nova,
        (None, other) => {
            return Err(anyhow::anyhow!(
                "{}: prefetch_source `{other}`: expected nova, glance or registry",
                a.inventory.display()
            ));
        }
    };
    let hosts_from = match (a.hosts, cloud.var_or_default("prefetch_hosts")?.as_str()) {
        (Some(h), _) => h,
        (None, "aggregate") => prefetch::HostsFrom::Aggregate,
        (None, "inventory") => prefetch::HostsFrom::Inventory,
        (None, other) => {
            return Err(anyhow::anyhow!(
                "{}: prefetch_hosts `{other}`: expected aggregate or inventory",
                a.inventory.display()
            ));
        }
    };
    let parallel = match a.parallel {
        Some(n) => n,
        None => {
            let v = cloud.var_or_default("prefetch_parallel")?;
            v.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{}: prefetch_parallel `{v}` is not a number",
                    a.inventory.display()
                )
            })?
        }
    };
    if parallel == 0 {
        return Err(anyhow::anyhow!("--parallel must be at least 1"));
    }
    if source == prefetch::Source::Nova {
        nova_source_fits(a, hosts_from)?;
    }
    let auth = cloud.auth()?;
    let limit = a.limit.as_ref().map(|l| {
        l.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    let computes = cloud
        .inventory
        .hosts
        .iter()
        .filter(|h| h.groups.iter().any(|g| g == "docker_computes"))
        .cloned()
        .collect();
    let cfg = prefetch::Config {
        aggregate: cloud.var_or_default("docker_aggregate")?,
        connect: cloud.connect_options(
            a.conn.persist,
            a.conn.connect_timeout,
            a.conn.accept_new_host_keys,
        ),
        controller: cloud.controller.clone(),
        inventory: Arc::new(cloud.inventory.clone()),
        computes,
        auth,
        source,
        hosts_from,
        limit,
        parallel,
        dry_run: a.dry_run,
        prune: a.prune,
        spool_dir: spool_dir("prefetch")?,
        projects: cloud.list_var("prefetch_projects")?,
        registries: cloud.list_var("prefetch_registries")?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if source == prefetch::Source::Nova {
        return run_precache(&cfg, &rt, a.json);
    }
    let multi = printer::multi();
    let summary = rt.block_on(prefetch::run(&cfg, &multi)).map_err(|e| match e {
        prefetch::PrefetchError::NoAggregate(_) => hinted(
            e.to_string(),
            "apply the bootstrap playbook first (it creates the aggregate), or use --hosts inventory",
        ),
        e => anyhow::Error::new(e),
    })?;
    report::prefetch_human(&summary);
    if a.json {
        printer::json(&serde_json::to_value(&summary).context("cannot encode the summary")?);
    }
    Ok(if summary.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the `nova` source cannot do: Nova caches on a whole aggregate, and cannot un-cache.
fn nova_source_fits(a: &PrefetchArgs, hosts_from: prefetch::HostsFrom) -> Result<()> {
    const USE_GLANCE: &str = "--source glance (or prefetch_source: glance) loads the images over SSH from the controller, host by host";
    if a.prune {
        return Err(hinted(
            "--prune: the nova source cannot remove images (Nova's image cache API has no un-cache call)",
            USE_GLANCE,
        ));
    }
    if a.limit.is_some() {
        return Err(hinted(
            "--limit: the nova source asks Nova to cache on every host of the aggregate",
            USE_GLANCE,
        ));
    }
    if hosts_from == prefetch::HostsFrom::Inventory {
        return Err(hinted(
            "prefetch_hosts inventory (--hosts inventory): the nova source works on the aggregate `docker_aggregate`, not on the inventory's hosts",
            USE_GLANCE,
        ));
    }
    Ok(())
}

/// `prefetch` with the `nova` source: one pre-cache request, no SSH to the computes.
fn run_precache(
    cfg: &prefetch::Config,
    rt: &tokio::runtime::Runtime,
    json: bool,
) -> Result<ExitCode> {
    let p = rt
        .block_on(crate::precache::run(cfg))
        .map_err(|e| match e {
            prefetch::PrefetchError::NoAggregate(_) => hinted(
                e.to_string(),
                "apply the bootstrap playbook first (it creates the aggregate `docker_aggregate`)",
            ),
            prefetch::PrefetchError::NovaTooOld(_) => hinted(
                e.to_string(),
                "Nova 21 (Ussuri) and later have it (Zed: 2.93); on an older Nova, use --source glance (or prefetch_source: glance)",
            ),
            e => anyhow::Error::new(e),
        })?;
    report::precache_human(&p);
    if json {
        printer::json(&serde_json::to_value(&p).context("cannot encode the summary")?);
    }
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn confirm(question: &str) -> Result<bool> {
    let answer = dialoguer_free_prompt(question)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn dialoguer_free_prompt(question: &str) -> Result<String> {
    use std::io::Write;
    let mut e = std::io::stderr();
    write!(e, "{question} [y/N] ")?;
    e.flush()?;
    let mut s = String::new();
    std::io::stdin().read_line(&mut s)?;
    Ok(s)
}

/// Sortable and unique enough: UTC time plus our pid.
pub(crate) fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, mo, d, h, mi, s) = civil(secs);
    format!(
        "{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z-{}",
        std::process::id()
    )
}

/// Seconds since the epoch to UTC (Howard Hinnant's days-from-civil, inverted).
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 { y + 1 } else { y },
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(super::civil(1_795_932_000), (2026, 11, 29, 6, 0, 0));
        assert_eq!(super::civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
