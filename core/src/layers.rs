//! The core's layers, bottom to top. A module may import from its own layer's modules only when
//! they are the same module, and from any layer below; never from above. `docs/ARCHITECTURE.md`
//! explains each layer; the test below reads the sources and enforces the table.

/// Top-level modules of `saad-core` by layer, bottom first.
pub const LAYERS: &[&[&str]] = &[
    &["error", "rng"],
    &["losses"],
    &["kernels"],
    &["models"],
    &["data", "checkpoint", "import", "export"],
    &["host_copy"],
    &["attacks"],
    &["eval", "health"],
    &["train"],
    &["transfer"],
];

/// The layer of a top-level module, if it is one.
pub fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[cfg(test)]
mod tests {
    use super::layer_of;
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The top-level modules a source file names as `crate::<module>` (in `use` lines and in
    /// paths), comments excluded.
    fn crate_imports(source: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in source.lines() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let name: String =
                    rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        }
        out
    }

    #[test]
    fn every_module_is_in_one_layer_and_imports_only_downwards() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut violations = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "lib" || module == "layers" {
                continue;
            }
            let Some(own) = layer_of(&module) else {
                panic!("{}: module {module} is in no layer of core/src/layers.rs", file.display());
            };
            for imported in crate_imports(&std::fs::read_to_string(file).unwrap()) {
                if imported == module || imported == "burn" {
                    continue;
                }
                match layer_of(&imported) {
                    Some(layer) if layer < own => {}
                    _ => violations.push(format!(
                        "{} (layer {own}) imports crate::{imported}",
                        relative.display()
                    )),
                }
            }
        }
        assert!(violations.is_empty(), "imports from the same layer or above:\n{violations:#?}");
    }

    /// Inside `train`, the methods sit below the loop: a method is a loss, not a trainer.
    #[test]
    fn training_methods_do_not_import_the_trainer() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/train/methods");
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            assert!(
                !source.contains("trainer::") && !source.contains("crate::transfer"),
                "{} imports the trainer or the transfer analysis",
                file.display()
            );
        }
    }

    #[test]
    fn the_scanner_sees_imports_in_use_lines_and_paths_but_not_comments() {
        let found = crate_imports(
            "use crate::losses::{a, b};\nlet x = crate::kernels::f(); // crate::train\n",
        );
        assert_eq!(found, ["losses", "kernels"]);
    }
}
