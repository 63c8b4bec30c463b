//! Names: canonical method keys (whatever spelling a result file uses), display labels,
//! and the paper's dataset order and labels.

/// Canonical method keys in the paper's order (zero-shot CLIP first, MaPLe last).
pub const METHODS: [&str; 7] = [
    "zsclip",
    "coop",
    "cocoop",
    "vpt",
    "deep_language",
    "ivlp",
    "maple",
];

/// The method of a result file that names none (files written before methods existed).
pub const DEFAULT_METHOD: &str = "maple";

/// The canonical key of a method name as a result file spells it: `MaPLe` and `maple`
/// give `maple`; `CLIP (zero-shot)`, `zero-shot`, `zeroshot`, `zsclip` and `clip` give
/// `zsclip`; `Co-CoOp` gives `cocoop`. Names not known are lower-cased and kept.
pub fn method_key(name: &str) -> String {
    let squashed: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let key = match squashed.as_str() {
        "maple" | "multimodalpromptlearning" => "maple",
        "zsclip" | "zeroshotclip" | "clipzeroshot" | "clip" | "zeroshot" | "zs" => "zsclip",
        "coop" => "coop",
        "cocoop" => "cocoop",
        "vpt" | "deepvisionprompting" | "deepvisionpromptingvpt" => "vpt",
        "ivlp" | "independentvlprompting" | "independentvlpromptingivlp" => "ivlp",
        "deeplanguage" | "deeplanguageprompting" | "language" => "deep_language",
        _ => return name.trim().to_lowercase(),
    };
    key.to_string()
}

/// The display label of a canonical method key (the key itself when unknown).
pub fn method_label(key: &str) -> String {
    match key {
        "maple" => "MaPLe",
        "zsclip" => "CLIP (zero-shot)",
        "coop" => "CoOp",
        "cocoop" => "CoCoOp",
        "vpt" => "VPT",
        "ivlp" => "IVLP",
        "deep_language" => "Deep language prompting",
        other => other,
    }
    .to_string()
}

/// Sort key of a method: the paper's order, then unknown methods by name.
pub fn method_rank(key: &str) -> (usize, String) {
    let i = METHODS
        .iter()
        .position(|m| *m == key)
        .unwrap_or(METHODS.len());
    (i, key.to_string())
}

/// The 11 base-to-novel datasets, in the paper's order (the trainer's dataset names).
pub const BASE_TO_NOVEL_DATASETS: [&str; 11] = [
    "imagenet",
    "caltech101",
    "oxford_pets",
    "stanford_cars",
    "oxford_flowers",
    "food101",
    "fgvc_aircraft",
    "sun397",
    "dtd",
    "eurosat",
    "ucf101",
];

/// The targets of domain generalisation (ImageNet's four variants), in the paper's order.
pub const DOMAIN_GENERALISATION_TARGETS: [&str; 4] =
    ["imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"];

/// Sort key of a dataset: the paper's order (base-to-novel datasets, then the ImageNet
/// variants), then unknown datasets by name.
pub fn dataset_rank(name: &str) -> (usize, String) {
    let i = BASE_TO_NOVEL_DATASETS
        .iter()
        .chain(DOMAIN_GENERALISATION_TARGETS.iter())
        .position(|d| *d == name)
        .unwrap_or(BASE_TO_NOVEL_DATASETS.len() + DOMAIN_GENERALISATION_TARGETS.len());
    (i, name.to_string())
}

/// The paper's label of a dataset (`oxford_flowers` is `Flowers102`); unknown names as is.
pub fn dataset_label(name: &str) -> String {
    match name {
        "imagenet" => "ImageNet",
        "caltech101" => "Caltech101",
        "oxford_pets" => "OxfordPets",
        "stanford_cars" => "StanfordCars",
        "oxford_flowers" => "Flowers102",
        "food101" => "Food101",
        "fgvc_aircraft" => "FGVCAircraft",
        "sun397" => "SUN397",
        "dtd" => "DTD",
        "eurosat" => "EuroSAT",
        "ucf101" => "UCF101",
        "imagenetv2" => "ImageNet-V2",
        "imagenet_sketch" => "ImageNet-Sketch",
        "imagenet_a" => "ImageNet-A",
        "imagenet_r" => "ImageNet-R",
        other => other,
    }
    .to_string()
}

/// A short label for plot axes (the paper's cross-dataset column names).
pub fn dataset_short_label(name: &str) -> String {
    match name {
        "caltech101" => "Caltech",
        "oxford_pets" => "Pets",
        "stanford_cars" => "Cars",
        "oxford_flowers" => "Flowers",
        "food101" => "Food",
        "fgvc_aircraft" => "Aircraft",
        "sun397" => "SUN",
        "ucf101" => "UCF",
        "imagenetv2" => "IN-V2",
        "imagenet_sketch" => "IN-Sketch",
        "imagenet_a" => "IN-A",
        "imagenet_r" => "IN-R",
        other => return dataset_label(other),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_spellings_of_trainer_files_and_the_paper_map_to_one_key() {
        for (name, key) in [
            ("MaPLe", "maple"),
            ("maple", "maple"),
            ("CLIP (zero-shot)", "zsclip"),
            ("zero-shot", "zsclip"),
            ("zsclip", "zsclip"),
            ("Co-CoOp", "cocoop"),
            ("CoCoOp", "cocoop"),
            ("CoOp", "coop"),
            ("Independent V-L prompting (IVLP)", "ivlp"),
            ("Deep vision prompting (VPT)", "vpt"),
            ("My Method", "my method"),
        ] {
            assert_eq!(method_key(name), key, "{name}");
        }
        assert!(method_rank("zsclip") < method_rank("maple"));
        assert!(method_rank("maple") < method_rank("my method"));
    }

    #[test]
    fn datasets_sort_in_the_paper_order_and_unknown_ones_last() {
        let mut d = vec!["procedural", "eurosat", "imagenet_a", "imagenet", "dtd"];
        d.sort_by_key(|n| dataset_rank(n));
        assert_eq!(
            d,
            ["imagenet", "dtd", "eurosat", "imagenet_a", "procedural"]
        );
        assert_eq!(dataset_label("oxford_flowers"), "Flowers102");
    }
}
