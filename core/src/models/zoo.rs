//! Published robust models by id (RobustBench and the DM-Improves-AT Tiny-ImageNet release):
//! which architecture, normalisation and class count their checkpoints need. The weights are
//! not shipped; the user downloads them (see README, "Teachers from PyTorch").

use super::{Arch, ModelSpec, Normalization};

/// One published model.
#[derive(Clone, Debug, PartialEq)]
pub struct ZooEntry {
    /// The id to ask for, matched case-insensitively by [`resolve`]: RobustBench's, with
    /// `_cifar100` appended where the CIFAR-10 leaderboard uses the same id.
    pub id: &'static str,
    /// Dataset the model was trained on (`cifar10`, `cifar100`, `tiny-imagenet`).
    pub dataset: &'static str,
    /// Architecture, class count and normalisation its checkpoint needs.
    pub spec: ModelSpec,
    /// A remark for listings (empty when there is none).
    pub note: &'static str,
}

fn dm(depth: usize, width: usize, classes: usize, n: Normalization) -> ModelSpec {
    ModelSpec::new(Arch::DmWideResNet { depth, width, silu: true }, classes)
        .with_normalization(Some(n))
}

fn wrn(depth: usize, width: usize, classes: usize) -> ModelSpec {
    ModelSpec::new(Arch::WideResNet { depth, width }, classes)
}

/// The supported published models.
pub fn entries() -> Vec<ZooEntry> {
    use Normalization as N;
    vec![
        ZooEntry {
            id: "Gowal2021Improving_28_10_ddpm_100m",
            dataset: "cifar10",
            spec: dm(28, 10, 10, N::CIFAR10),
            note: "SAAD's default teacher",
        },
        ZooEntry {
            id: "Rebuffi2021Fixing_70_16_cutmix_extra",
            dataset: "cifar10",
            spec: dm(70, 16, 10, N::CIFAR10),
            note: "",
        },
        ZooEntry {
            id: "Wang2023Better_WRN-28-10",
            dataset: "cifar10",
            spec: dm(28, 10, 10, N::CIFAR10),
            note: "",
        },
        ZooEntry {
            id: "Wang2023Better_WRN-70-16",
            dataset: "cifar10",
            spec: dm(70, 16, 10, N::CIFAR10),
            note: "",
        },
        ZooEntry {
            id: "Bartoldson2024Adversarial_WRN-94-16",
            dataset: "cifar10",
            spec: dm(94, 16, 10, N::CIFAR10),
            note: "",
        },
        ZooEntry {
            id: "Bartoldson2024Adversarial_WRN-82-8",
            dataset: "cifar10",
            spec: dm(82, 8, 10, N::CIFAR10),
            note: "",
        },
        ZooEntry {
            id: "Chen2021LTD_WRN34_10",
            dataset: "cifar10",
            spec: wrn(34, 10, 10),
            note: "ReLU WideResNet, no normalisation",
        },
        ZooEntry {
            id: "Carmon2019Unlabeled",
            dataset: "cifar10",
            spec: wrn(28, 10, 10),
            note: "ReLU WideResNet, no normalisation",
        },
        ZooEntry {
            id: "Wang2023Better_WRN-28-10_cifar100",
            dataset: "cifar100",
            spec: dm(28, 10, 100, N::CIFAR100),
            note: "RobustBench CIFAR-100 Linf id Wang2023Better_WRN-28-10",
        },
        ZooEntry {
            id: "Wang2023Better_WRN-70-16_cifar100",
            dataset: "cifar100",
            spec: dm(70, 16, 100, N::CIFAR100),
            note: "RobustBench CIFAR-100 Linf id Wang2023Better_WRN-70-16",
        },
        ZooEntry {
            id: "DM-Improves-AT_tiny-imagenet_WRN-28-10",
            dataset: "tiny-imagenet",
            spec: dm(28, 10, 200, N::TINY_IMAGENET),
            note: "Tiny-ImageNet WRN-28-10 SiLU (Wang et al. 2023 release)",
        },
    ]
}

/// A published id, or an architecture id with `classes`; the error lists what is known.
pub fn resolve(id: &str, classes: usize) -> Result<ModelSpec, String> {
    if let Some(e) = entries().into_iter().find(|e| e.id.eq_ignore_ascii_case(id)) {
        return Ok(e.spec);
    }
    id.parse::<Arch>().map(|a| ModelSpec::new(a, classes)).map_err(|e| {
        let ids: Vec<&str> = entries().iter().map(|e| e.id).collect();
        format!("{e}; or a published model id: {}", ids.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve() {
        let s = resolve("Gowal2021Improving_28_10_ddpm_100m", 10).unwrap();
        assert_eq!(s.arch.to_string(), "dm-wrn-28-10");
        assert_eq!(s.normalization, Some(Normalization::CIFAR10));
        assert_eq!(resolve("wrn-34-10", 100).unwrap().num_classes, 100);
        assert!(resolve("nope", 10).unwrap_err().contains("Carmon2019Unlabeled"));
    }
}
