fn main() -> std::process::ExitCode {
    novadock::cli::main()
}
