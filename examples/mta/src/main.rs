//! `postern-mta`: placeholder until the MTA issue lands.

fn main() {
    eprintln!("postern-mta: not built yet");
    std::process::exit(2);
}
