fn main() -> std::process::ExitCode {
    actiongate::cli::main()
}
