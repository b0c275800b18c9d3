//! Thin binary: all behaviour lives in the library so tests drive the same code.

fn main() -> std::process::ExitCode {
    vigil::cli::main()
}
