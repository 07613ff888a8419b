//! The actiongate binary: hands the command line to `cli`; owns nothing else.

fn main() -> std::process::ExitCode {
    actiongate::cli::main()
}
