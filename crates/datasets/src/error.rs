//! The crate's error type: every variant names the dataset, the file and the entry at fault.

use std::path::PathBuf;

/// Everything that can go wrong while opening, sampling or loading a dataset.
///
/// Listing problems (missing files, unknown classes, bad labels) are reported
/// when the dataset is opened, before any training; decoding problems when the
/// image is loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The name given is not one of the 15 datasets.
    #[error("unknown dataset {name:?}; expected one of: {expected}")]
    UnknownDataset {
        /// What was asked for.
        name: String,
        /// The accepted names, comma separated.
        expected: String,
    },
    /// The dataset's folder (`$ROOT/<dir>`) or one of its image folders is missing.
    #[error("{dataset}: folder {path} does not exist ({what})")]
    MissingFolder {
        /// Dataset name.
        dataset: String,
        /// The folder expected.
        path: PathBuf,
        /// What the folder should hold.
        what: String,
    },
    /// A split or class-name file the reader needs is missing.
    #[error("{dataset}: required file {path} does not exist ({what})")]
    MissingFile {
        /// Dataset name.
        dataset: String,
        /// The file expected.
        path: PathBuf,
        /// Why it is needed.
        what: String,
    },
    /// An I/O error while reading a file or listing a folder.
    #[error("{dataset}: cannot read {path}: {source}")]
    Io {
        /// Dataset name (or "draw" for saved draws).
        dataset: String,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file that does not parse.
    #[error("{dataset}: {path} is not valid JSON: {source}")]
    Json {
        /// Dataset name.
        dataset: String,
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// An entry of a split or list file that does not have the expected form.
    #[error("{dataset}: {file}, {entry}: {reason}")]
    BadEntry {
        /// Dataset name.
        dataset: String,
        /// The split or list file (or folder).
        file: PathBuf,
        /// Which entry, e.g. `train[12]` or `line 7`.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image listed by a split file or folder is absent (or not a file).
    #[error("{dataset}: {file}, {entry}: image {path} does not exist ({missing} listed image(s) missing in total)")]
    MissingImage {
        /// Dataset name.
        dataset: String,
        /// The split file or folder that lists it.
        file: PathBuf,
        /// The first offending entry.
        entry: String,
        /// The absent image.
        path: PathBuf,
        /// How many listed images are missing altogether.
        missing: usize,
    },
    /// A class folder or class name that the class-name table does not know.
    #[error("{dataset}: {file}, {entry}: class {class:?} is not in {table}")]
    UnknownClass {
        /// Dataset name.
        dataset: String,
        /// The file or folder naming the class.
        file: PathBuf,
        /// The entry.
        entry: String,
        /// The unknown class (wnid, folder or variant name).
        class: String,
        /// The table it was looked up in.
        table: Box<std::path::Path>,
    },
    /// A val/test label that is not a class of the train split.
    #[error("{dataset}: {file}, {entry}: label {label} is out of range (the train split defines {num_classes} classes)")]
    LabelOutOfRange {
        /// Dataset name.
        dataset: String,
        /// The split file.
        file: PathBuf,
        /// The entry.
        entry: String,
        /// The label found.
        label: usize,
        /// Number of classes, `max(train label) + 1`.
        num_classes: usize,
    },
    /// A class with no item in a split that must cover every class.
    #[error("{dataset}: {file}: class {label} ({classname:?}) has no {split} images")]
    EmptyClass {
        /// Dataset name.
        dataset: String,
        /// The split file or class folder.
        file: PathBuf,
        /// Which split.
        split: String,
        /// The empty label.
        label: usize,
        /// Its name where known.
        classname: String,
    },
    /// One label carrying two different class names in the train split.
    #[error(
        "{dataset}: {file}, {entry}: label {label} is named {found:?} here but {first:?} earlier"
    )]
    InconsistentClassname {
        /// Dataset name.
        dataset: String,
        /// The split file.
        file: PathBuf,
        /// The entry with the second name.
        entry: String,
        /// The label.
        label: usize,
        /// The name seen first.
        first: Box<str>,
        /// The conflicting name.
        found: Box<str>,
    },
    /// A split that is empty where it must not be.
    #[error("{dataset}: {file}: the {split} split is empty")]
    EmptySplit {
        /// Dataset name.
        dataset: String,
        /// Where the split came from.
        file: PathBuf,
        /// Which split.
        split: String,
    },
    /// An image that exists but cannot be decoded.
    #[error("{dataset}: cannot decode image {path} ({entry}): {reason}")]
    Decode {
        /// Dataset name.
        dataset: String,
        /// The image file.
        path: PathBuf,
        /// The entry, e.g. `train[3]`.
        entry: String,
        /// The decoder's message.
        reason: String,
    },
    /// A saved draw whose source files changed since it was drawn.
    #[error("saved draw {path} is stale: {source_name} had sha256 {recorded} when drawn but now has {current}; delete the draw to resample")]
    StaleDraw {
        /// The saved draw.
        path: PathBuf,
        /// The source (split file or folder listing) that changed.
        source_name: String,
        /// The digest recorded in the draw.
        recorded: String,
        /// The digest now.
        current: String,
    },
    /// A saved draw made with other settings than the ones asked for.
    #[error("saved draw {path} was made with {field} = {recorded}, but {requested} was asked for")]
    DrawMismatch {
        /// The saved draw.
        path: PathBuf,
        /// The setting that differs.
        field: String,
        /// Its value in the draw.
        recorded: String,
        /// The value asked for.
        requested: String,
    },
    /// An argument of the library API that cannot be honoured (0 shots, a batch size of 0,
    /// a batch too large to allocate, ...).
    #[error("{dataset}: {argument} = {value}: {reason}")]
    InvalidArgument {
        /// Dataset name.
        dataset: String,
        /// The argument, e.g. `shots`.
        argument: String,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A request the dataset cannot honour (e.g. base/new classes of a test-only dataset).
    #[error("{dataset}: {reason}")]
    Unsupported {
        /// Dataset name.
        dataset: String,
        /// Why.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
