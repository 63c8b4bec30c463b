//! Learnable prompt vectors shared by the methods: a text context initialised from the
//! token embeddings of words or drawn N(0, 0.02), random prompt tensors for deep
//! prompting, and the [`DeepPrompts`] layout "nothing before block 0, then one prompt per
//! block".

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use clip_model::tokenizer::Tokenizer;
use clip_model::{Clip, DeepPrompts, PromptAnchor};

use crate::error::{MapleError, Result};

/// Standard deviation of every randomly initialised prompt in the reference (`normal_(std=0.02)`).
pub const PROMPT_STD: f64 = 0.02;

/// The context words of a config, as the reference reads them: `None` when absent or
/// blank (the reference's `if ctx_init:`), underscores as spaces.
pub fn context_words(ctx_init: Option<&str>) -> Option<String> {
    ctx_init
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.replace('_', " "))
}

/// Number of context vectors the reference derives from context words: Python's
/// `len(ctx_init.split(" "))` (CoOp and Co-CoOp replace `N_CTX` by it).
pub fn word_count(words: &str) -> usize {
    words.split(' ').count()
}

/// The prompt prefix of a randomly initialised context: `n` placeholder words `X`.
pub fn placeholder_prefix(n: usize) -> String {
    vec!["X"; n].join(" ")
}

/// Context vectors from the token embeddings of `words`: positions `1..1 + n` of the
/// tokenized phrase (after SOT), as every reference learner copies them.
///
/// # Errors
/// A phrase that does not tokenize within CLIP's context, or `n` beyond it.
///
/// # Shapes
/// - output: `[n, text_width]`
pub fn context_from_words<B: Backend>(
    clip: &Clip<B>,
    tokenizer: &Tokenizer,
    words: &str,
    n: usize,
) -> Result<Tensor<B, 2>> {
    let context_length = clip.text.context_length();
    if n == 0 || 1 + n > context_length {
        return Err(MapleError::Invalid(format!(
            "{n} context vectors from {words:?}: must be between 1 and {}",
            context_length - 1
        )));
    }
    let rows = tokenizer.tokenize_batch(&[words], context_length, false)?;
    let emb = clip.text.embed_rows(&rows, &clip.device());
    let width = clip.text.width();
    Ok(emb.slice([0..1, 1..1 + n]).reshape([n, width]).detach())
}

/// A `[rows, width]` tensor drawn N(0, 0.02) from the backend's seeded generator.
pub fn random_prompt<B: Backend>(rows: usize, width: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::random([rows, width], Distribution::Normal(0.0, PROMPT_STD), device)
}

/// `count` trainable `[rows, width]` prompts drawn N(0, 0.02), in order.
pub fn random_prompts<B: Backend>(
    count: usize,
    rows: usize,
    width: usize,
    device: &B::Device,
) -> Vec<Param<Tensor<B, 2>>> {
    (0..count)
        .map(|_| Param::from_tensor(random_prompt(rows, width, device)))
        .collect()
}

/// Deep prompts for blocks `1..=prompts.len()`: block 0 keeps its input (its prompts are
/// the shallow ones), later blocks carry what the previous block produced.
pub fn deep_from_block1<B: Backend>(
    anchor: PromptAnchor,
    prompts: Vec<Tensor<B, 2>>,
) -> DeepPrompts<B> {
    let layers = std::iter::once(None)
        .chain(prompts.into_iter().map(Some))
        .collect();
    DeepPrompts { anchor, layers }
}

/// Checks a prompt depth against the number of blocks of a tower.
///
/// # Errors
/// `depth` below `min` or above `blocks`, naming `what`, both values and the limit.
pub fn check_depth(what: &str, depth: usize, min: usize, blocks: usize) -> Result<()> {
    if depth < min || depth > blocks {
        return Err(MapleError::Invalid(format!(
            "{what} {depth} must be between {min} and the number of blocks of that tower ({blocks})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_count_follows_python_split_on_single_spaces() {
        assert_eq!(word_count("a photo of a"), 4);
        assert_eq!(word_count("a  photo"), 3);
        assert_eq!(word_count("photo"), 1);
    }

    #[test]
    fn blank_context_words_mean_random_init() {
        assert_eq!(context_words(None), None);
        assert_eq!(context_words(Some("")), None);
        assert_eq!(context_words(Some("  ")), None);
        assert_eq!(
            context_words(Some("a_photo of")),
            Some("a photo of".to_string())
        );
    }

    #[test]
    fn placeholder_prefix_has_one_x_per_vector() {
        assert_eq!(placeholder_prefix(3), "X X X");
        assert_eq!(placeholder_prefix(1), "X");
    }

    #[test]
    fn depth_limits_name_both_values() {
        let err = check_depth("vision prompt depth", 13, 1, 12).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("13") && msg.contains("12"), "{msg}");
        assert!(check_depth("d", 0, 0, 12).is_ok());
        assert!(check_depth("d", 0, 1, 12).is_err());
    }
}
