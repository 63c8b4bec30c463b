//! Parameter paths (`proj.weight`, `compound_prompts_text.0`) as module visitors see them.
//!
//! An enum module such as [`crate::AnyLearner`] adds no component: a learner has the same
//! parameter names alone or inside the enum, so checkpoints and momentum buffers do not
//! depend on how the learner was held.

/// The path of the module a visitor or mapper is in.
#[derive(Debug, Default, Clone)]
pub(crate) struct ParamPath(Vec<String>);

impl ParamPath {
    /// Entering a child module named `name` of `container` type.
    pub(crate) fn enter(&mut self, name: &str, container: &str) {
        if !container.starts_with("Enum:") {
            self.0.push(name.to_string());
        }
    }

    /// Leaving it.
    pub(crate) fn exit(&mut self, container: &str) {
        if !container.starts_with("Enum:") {
            self.0.pop();
        }
    }

    /// The dotted path.
    pub(crate) fn current(&self) -> String {
        self.0.join(".")
    }
}
