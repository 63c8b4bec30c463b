//! The 15 benchmark datasets by name, with the per-dataset facts the readers and the trainer need.

use std::fmt;
use std::str::FromStr;

use crate::error::DatasetError;

/// One of the 15 datasets of the MaPLe benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatasetName {
    /// ImageNet-1k (train folders, val as test).
    ImageNet,
    /// Caltech101 (100 classes).
    Caltech101,
    /// Oxford-IIIT Pets.
    OxfordPets,
    /// Stanford Cars.
    StanfordCars,
    /// Oxford Flowers-102.
    OxfordFlowers,
    /// Food-101.
    Food101,
    /// FGVC Aircraft (variants).
    FgvcAircraft,
    /// SUN397.
    Sun397,
    /// Describable Textures.
    Dtd,
    /// EuroSAT (RGB).
    EuroSat,
    /// UCF101 middle frames.
    Ucf101,
    /// ImageNetV2 matched-frequency (test only).
    ImageNetV2,
    /// ImageNet-Sketch (test only).
    ImageNetSketch,
    /// ImageNet-A, 200 classes (test only).
    ImageNetA,
    /// ImageNet-R, 200 classes (test only).
    ImageNetR,
}

/// How a dataset's full split is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitSource {
    /// A `split_zhou_*.json` file in the dataset folder.
    Json(&'static str),
    /// ImageNet's `images/{train,val}/<wnid>/` folders and `classnames.txt`.
    ImageNetFolders,
    /// FGVC Aircraft's `variants.txt` and `images_variant_{train,val,test}.txt`.
    AircraftLists,
    /// ImageNetV2's numbered folders `0..n` and `classnames.txt` (file order).
    NumberedFolders,
    /// Sorted `<wnid>` folders labelled by position, named through `classnames.txt`.
    WnidFolders,
}

impl DatasetName {
    /// All 15 datasets, in the order of the benchmark tables.
    pub const ALL: [DatasetName; 15] = [
        DatasetName::ImageNet,
        DatasetName::Caltech101,
        DatasetName::OxfordPets,
        DatasetName::StanfordCars,
        DatasetName::OxfordFlowers,
        DatasetName::Food101,
        DatasetName::FgvcAircraft,
        DatasetName::Sun397,
        DatasetName::Dtd,
        DatasetName::EuroSat,
        DatasetName::Ucf101,
        DatasetName::ImageNetV2,
        DatasetName::ImageNetSketch,
        DatasetName::ImageNetA,
        DatasetName::ImageNetR,
    ];

    /// The 11 datasets of the base-to-novel benchmark.
    pub const BASE_TO_NOVEL: [DatasetName; 11] = [
        DatasetName::ImageNet,
        DatasetName::Caltech101,
        DatasetName::OxfordPets,
        DatasetName::StanfordCars,
        DatasetName::OxfordFlowers,
        DatasetName::Food101,
        DatasetName::FgvcAircraft,
        DatasetName::Sun397,
        DatasetName::Dtd,
        DatasetName::EuroSat,
        DatasetName::Ucf101,
    ];

    /// The command-line name, e.g. `oxford_pets`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::ImageNet => "imagenet",
            DatasetName::Caltech101 => "caltech101",
            DatasetName::OxfordPets => "oxford_pets",
            DatasetName::StanfordCars => "stanford_cars",
            DatasetName::OxfordFlowers => "oxford_flowers",
            DatasetName::Food101 => "food101",
            DatasetName::FgvcAircraft => "fgvc_aircraft",
            DatasetName::Sun397 => "sun397",
            DatasetName::Dtd => "dtd",
            DatasetName::EuroSat => "eurosat",
            DatasetName::Ucf101 => "ucf101",
            DatasetName::ImageNetV2 => "imagenetv2",
            DatasetName::ImageNetSketch => "imagenet_sketch",
            DatasetName::ImageNetA => "imagenet_a",
            DatasetName::ImageNetR => "imagenet_r",
        }
    }

    /// The reference's config name (`DATASET.NAME`), e.g. `OxfordPets`.
    pub fn reference_name(self) -> &'static str {
        match self {
            DatasetName::ImageNet => "ImageNet",
            DatasetName::Caltech101 => "Caltech101",
            DatasetName::OxfordPets => "OxfordPets",
            DatasetName::StanfordCars => "StanfordCars",
            DatasetName::OxfordFlowers => "OxfordFlowers",
            DatasetName::Food101 => "Food101",
            DatasetName::FgvcAircraft => "FGVCAircraft",
            DatasetName::Sun397 => "SUN397",
            DatasetName::Dtd => "DescribableTextures",
            DatasetName::EuroSat => "EuroSAT",
            DatasetName::Ucf101 => "UCF101",
            DatasetName::ImageNetV2 => "ImageNetV2",
            DatasetName::ImageNetSketch => "ImageNetSketch",
            DatasetName::ImageNetA => "ImageNetA",
            DatasetName::ImageNetR => "ImageNetR",
        }
    }

    /// The dataset's folder under the data root, e.g. `caltech-101`.
    pub fn dir(self) -> &'static str {
        match self {
            DatasetName::ImageNet => "imagenet",
            DatasetName::Caltech101 => "caltech-101",
            DatasetName::OxfordPets => "oxford_pets",
            DatasetName::StanfordCars => "stanford_cars",
            DatasetName::OxfordFlowers => "oxford_flowers",
            DatasetName::Food101 => "food-101",
            DatasetName::FgvcAircraft => "fgvc_aircraft",
            DatasetName::Sun397 => "sun397",
            DatasetName::Dtd => "dtd",
            DatasetName::EuroSat => "eurosat",
            DatasetName::Ucf101 => "ucf101",
            DatasetName::ImageNetV2 => "imagenetv2",
            DatasetName::ImageNetSketch => "imagenet-sketch",
            DatasetName::ImageNetA => "imagenet-adversarial",
            DatasetName::ImageNetR => "imagenet-rendition",
        }
    }

    /// The folder, relative to [`DatasetName::dir`], that split-file paths (or
    /// class folders) are relative to; empty for the dataset folder itself.
    pub fn image_root(self) -> &'static str {
        match self {
            DatasetName::ImageNet => "images",
            DatasetName::Caltech101 => "101_ObjectCategories",
            DatasetName::OxfordPets => "images",
            DatasetName::StanfordCars => "",
            DatasetName::OxfordFlowers => "jpg",
            DatasetName::Food101 => "images",
            DatasetName::FgvcAircraft => "images",
            DatasetName::Sun397 => "SUN397",
            DatasetName::Dtd => "images",
            DatasetName::EuroSat => "2750",
            DatasetName::Ucf101 => "UCF-101-midframes",
            DatasetName::ImageNetV2 => "imagenetv2-matched-frequency-format-val",
            DatasetName::ImageNetSketch => "images",
            DatasetName::ImageNetA => "imagenet-a",
            DatasetName::ImageNetR => "imagenet-r",
        }
    }

    /// Where the full split comes from.
    pub fn split_source(self) -> SplitSource {
        match self {
            DatasetName::ImageNet => SplitSource::ImageNetFolders,
            DatasetName::Caltech101 => SplitSource::Json("split_zhou_Caltech101.json"),
            DatasetName::OxfordPets => SplitSource::Json("split_zhou_OxfordPets.json"),
            DatasetName::StanfordCars => SplitSource::Json("split_zhou_StanfordCars.json"),
            DatasetName::OxfordFlowers => SplitSource::Json("split_zhou_OxfordFlowers.json"),
            DatasetName::Food101 => SplitSource::Json("split_zhou_Food101.json"),
            DatasetName::FgvcAircraft => SplitSource::AircraftLists,
            DatasetName::Sun397 => SplitSource::Json("split_zhou_SUN397.json"),
            DatasetName::Dtd => SplitSource::Json("split_zhou_DescribableTextures.json"),
            DatasetName::EuroSat => SplitSource::Json("split_zhou_EuroSAT.json"),
            DatasetName::Ucf101 => SplitSource::Json("split_zhou_UCF101.json"),
            DatasetName::ImageNetV2 => SplitSource::NumberedFolders,
            DatasetName::ImageNetSketch | DatasetName::ImageNetA | DatasetName::ImageNetR => {
                SplitSource::WnidFolders
            }
        }
    }

    /// Whether the dataset has a validation split of its own (sampled with
    /// `min(K, 4)` shots). ImageNet uses its test set as val; the variants have none.
    pub fn has_val(self) -> bool {
        !matches!(self, DatasetName::ImageNet) && !self.is_test_only()
    }

    /// Whether the dataset only has a test split (the ImageNet variants).
    pub fn is_test_only(self) -> bool {
        matches!(
            self,
            DatasetName::ImageNetV2
                | DatasetName::ImageNetSketch
                | DatasetName::ImageNetA
                | DatasetName::ImageNetR
        )
    }

    /// The zero-shot CLIP prompt template of the reference (`trainers/zsclip.py`), with `{}` for the class name.
    pub fn template(self) -> &'static str {
        match self {
            DatasetName::OxfordPets => "a photo of a {}, a type of pet.",
            DatasetName::OxfordFlowers => "a photo of a {}, a type of flower.",
            DatasetName::FgvcAircraft => "a photo of a {}, a type of aircraft.",
            DatasetName::Dtd => "{} texture.",
            DatasetName::EuroSat => "a centered satellite photo of {}.",
            DatasetName::Food101 => "a photo of {}, a type of food.",
            DatasetName::Ucf101 => "a photo of a person doing {}.",
            _ => "a photo of a {}.",
        }
    }

    /// The template filled with a class name (`_` kept as is; MaPLe's prompt
    /// learner replaces `_` by a space itself).
    pub fn prompt(self, classname: &str) -> String {
        self.template().replacen("{}", classname, 1)
    }

    /// The class count of the real dataset (informative; readers take the
    /// count from the data, so small test trees have fewer).
    pub fn expected_num_classes(self) -> usize {
        match self {
            DatasetName::ImageNet | DatasetName::ImageNetV2 | DatasetName::ImageNetSketch => 1000,
            DatasetName::Caltech101 | DatasetName::FgvcAircraft => 100,
            DatasetName::OxfordPets => 37,
            DatasetName::StanfordCars => 196,
            DatasetName::OxfordFlowers => 102,
            DatasetName::Food101 | DatasetName::Ucf101 => 101,
            DatasetName::Sun397 => 397,
            DatasetName::Dtd => 47,
            DatasetName::EuroSat => 10,
            DatasetName::ImageNetA | DatasetName::ImageNetR => 200,
        }
    }

    /// The accepted command-line names, comma separated (for help texts).
    pub fn list() -> String {
        Self::ALL
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = DatasetError;

    /// Accepts the command-line name (`oxford_pets`) or the reference's config
    /// name (`OxfordPets`), case-insensitively, with `-` read as `_`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .iter()
            .copied()
            .find(|d| d.as_str() == wanted || d.reference_name().to_ascii_lowercase() == wanted)
            .ok_or_else(|| DatasetError::UnknownDataset {
                name: s.to_string(),
                expected: Self::list(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_through_display_and_from_str() {
        for d in DatasetName::ALL {
            assert_eq!(d.to_string().parse::<DatasetName>().unwrap(), d);
            assert_eq!(d.reference_name().parse::<DatasetName>().unwrap(), d);
        }
    }

    #[test]
    fn unknown_names_list_the_accepted_ones() {
        let err = "cifar10".parse::<DatasetName>().unwrap_err().to_string();
        assert!(
            err.contains("cifar10") && err.contains("imagenet_r"),
            "{err}"
        );
    }

    #[test]
    fn templates_follow_zsclip() {
        assert_eq!(DatasetName::Dtd.prompt("banded"), "banded texture.");
        assert_eq!(
            DatasetName::ImageNetA.prompt("goldfish"),
            "a photo of a goldfish."
        );
        assert!(!DatasetName::ImageNet.has_val() && DatasetName::Caltech101.has_val());
    }
}
