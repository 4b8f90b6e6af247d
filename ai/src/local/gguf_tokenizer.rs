//! The byte-level BPE tokenizer of a GGUF chat model, built from the file's metadata
//! (`tokenizer.ggml.tokens`, `.token_type`, `.merges`, `.bos_token_id`, `.eos_token_id`):
//! SmolLM2's GGUF ships no `tokenizer.json`.
//!
//! Encoding follows SmolLM2's own pipeline (`tokenizer.ggml.pre = smollm`): digits split one by
//! one, then GPT-2's byte-level pre-tokenization (no prefix space) and BPE merges by rank.
//! Control tokens (`<|im_start|>`, `<|im_end|>`, …) are recognized only by
//! [`GgufTokenizer::encode_with_special_tokens`]; [`GgufTokenizer::encode`] treats their text
//! as ordinary characters, so a message cannot smuggle a turn boundary into a prompt.
//! Decoding goes through bytes ([`GgufTokenizer::token_bytes`]), so a character split across
//! tokens can be streamed whole ([`IncrementalDecoder`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::Tokenizer;

use crate::error::AiError;
use crate::settings::ProviderKind;

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// A vocabulary as a GGUF file stores it, before it becomes a [`GgufTokenizer`].
#[derive(Debug, Clone, PartialEq)]
pub struct GgufVocabulary {
    /// Token texts by id, in the byte-level alphabet (`Ġ` for a space, …).
    pub tokens: Vec<String>,
    /// One `tokenizer.ggml.token_type` per token (1 normal, 3 control, 4 user-defined, …).
    pub token_types: Vec<i32>,
    /// Merges by rank, each `"left right"`.
    pub merges: Vec<String>,
    pub bos_id: u32,
    pub eos_id: u32,
}

pub struct GgufTokenizer {
    /// BPE with the pre-tokenizers and no added tokens: special-token text stays text.
    bpe: Tokenizer,
    /// What each id decodes to; empty for control tokens, which are not text.
    token_bytes: Vec<Vec<u8>>,
    /// Control tokens by their text, longest first so that a prefix never wins.
    special_tokens: Vec<(String, u32)>,
    bos_id: u32,
    eos_id: u32,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("vocab_size", &self.token_bytes.len())
            .field("special_tokens", &self.special_tokens.len())
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .finish()
    }
}

impl GgufTokenizer {
    /// Reads only the metadata of the GGUF file at `path` (not its tensors).
    pub fn from_gguf_file(path: &Path) -> Result<Self, AiError> {
        let load_error = |reason: String| AiError::ModelLoad {
            path: path.display().to_string(),
            reason,
        };
        let file = File::open(path).map_err(|e| load_error(e.to_string()))?;
        let content = gguf_file::Content::read(&mut BufReader::new(file))
            .map_err(|e| load_error(format!("not a readable GGUF file: {e}")))?;
        Self::from_gguf(&content).map_err(load_error)
    }

    /// The tokenizer described by a GGUF file's metadata; the error says which key is wrong.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self, String> {
        Self::from_vocabulary(GgufVocabulary::from_gguf(content)?)
    }

    pub fn from_vocabulary(vocabulary: GgufVocabulary) -> Result<Self, String> {
        let GgufVocabulary {
            tokens,
            token_types,
            merges,
            bos_id,
            eos_id,
        } = vocabulary;
        if tokens.is_empty() {
            return Err("the vocabulary is empty".into());
        }
        if token_types.len() != tokens.len() {
            return Err(format!(
                "{} token types for {} tokens",
                token_types.len(),
                tokens.len()
            ));
        }
        for (name, id) in [("bos", bos_id), ("eos", eos_id)] {
            if id as usize >= tokens.len() {
                return Err(format!(
                    "the {name} token id {id} is outside the vocabulary"
                ));
            }
        }
        let merges = merges
            .iter()
            .map(|merge| {
                merge
                    .split_once(' ')
                    .map(|(left, right)| (left.to_owned(), right.to_owned()))
                    .ok_or_else(|| format!("merge {merge:?} is not two tokens"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), id as u32))
            .collect();
        let model = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| format!("cannot build the BPE model: {e}"))?;
        let mut bpe = Tokenizer::new(model);
        bpe.with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])));

        let byte_of_char = byte_of_char();
        let token_bytes = tokens
            .iter()
            .zip(&token_types)
            .map(|(token, kind)| match *kind {
                TOKEN_TYPE_CONTROL => Vec::new(),
                TOKEN_TYPE_USER_DEFINED => token.as_bytes().to_vec(),
                _ => byte_level_to_bytes(token, &byte_of_char),
            })
            .collect();
        let mut special_tokens: Vec<(String, u32)> = tokens
            .iter()
            .zip(&token_types)
            .enumerate()
            .filter(|(_, (token, kind))| **kind == TOKEN_TYPE_CONTROL && !token.is_empty())
            .map(|(id, (token, _))| (token.clone(), id as u32))
            .collect();
        special_tokens.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Ok(Self {
            bpe,
            token_bytes,
            special_tokens,
            bos_id,
            eos_id,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// The id of a control token such as `<|im_start|>`.
    pub fn special_token_id(&self, text: &str) -> Option<u32> {
        self.special_tokens
            .iter()
            .find(|(token, _)| token == text)
            .map(|(_, id)| *id)
    }

    /// Whether `id` is a control token (never text).
    pub fn is_special(&self, id: u32) -> bool {
        self.special_tokens
            .iter()
            .any(|(_, special)| *special == id)
    }

    /// Ordinary text to ids; the text of a control token is encoded as characters.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, AiError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = self
            .bpe
            .encode(text, false)
            .map_err(|e| AiError::rejected(ProviderKind::Local, format!("cannot tokenize: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text to ids, where the text of each control token becomes that token's single id.
    pub fn encode_with_special_tokens(&self, text: &str) -> Result<Vec<u32>, AiError> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match self.next_special(rest) {
                Some((at, token, id)) => {
                    ids.extend(self.encode(&rest[..at])?);
                    ids.push(id);
                    rest = &rest[at + token.len()..];
                }
                None => {
                    ids.extend(self.encode(rest)?);
                    break;
                }
            }
        }
        Ok(ids)
    }

    /// The earliest control token in `text`: (byte offset, its text, its id).
    fn next_special<'a>(&'a self, text: &str) -> Option<(usize, &'a str, u32)> {
        self.special_tokens
            .iter()
            .filter_map(|(token, id)| {
                text.find(token.as_str())
                    .map(|at| (at, token.as_str(), *id))
            })
            // Earliest first; at one offset the longest (listed first) wins.
            .min_by_key(|(at, _, _)| *at)
    }

    /// The bytes token `id` stands for: empty for control tokens and unknown ids.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Ids back to text, control tokens left out; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|id| self.token_bytes(*id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl GgufVocabulary {
    /// The `tokenizer.ggml.*` keys of a GGUF file (model `gpt2`, byte-level BPE).
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self, String> {
        let get = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| format!("the GGUF metadata has no `{key}`"))
        };
        let model = get("tokenizer.ggml.model")?
            .to_string()
            .map_err(|e| format!("tokenizer.ggml.model: {e}"))?;
        if model != "gpt2" {
            return Err(format!(
                "tokenizer.ggml.model is {model:?}; only byte-level BPE (gpt2) is supported"
            ));
        }
        let strings = |key: &str| -> Result<Vec<String>, String> {
            get(key)?
                .to_vec()
                .map_err(|e| format!("{key}: {e}"))?
                .iter()
                .map(|v| v.to_string().cloned().map_err(|e| format!("{key}: {e}")))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let token_types = match content.metadata.get("tokenizer.ggml.token_type") {
            Some(types) => types
                .to_vec()
                .map_err(|e| format!("tokenizer.ggml.token_type: {e}"))?
                .iter()
                .map(|v| {
                    v.to_i32()
                        .map_err(|e| format!("tokenizer.ggml.token_type: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            // Without types every token is ordinary text.
            None => vec![1; tokens.len()],
        };
        let id = |key: &str| -> Result<u32, String> {
            get(key)?.to_u32().map_err(|e| format!("{key}: {e}"))
        };
        Ok(Self {
            bos_id: id("tokenizer.ggml.bos_token_id")?,
            eos_id: id("tokenizer.ggml.eos_token_id")?,
            tokens,
            token_types,
            merges,
        })
    }
}

/// GPT-2's byte-level alphabet: each byte is shown as a printable character. Bytes that are
/// printable already (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) stand for themselves; the others (controls,
/// space, DEL, NBSP, soft hyphen) take the characters from U+0100 on, in byte order.
fn byte_level_alphabet() -> [char; 256] {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut alphabet = ['\0'; 256];
    let mut next_shifted = 0x100u32;
    for (byte, slot) in alphabet.iter_mut().enumerate() {
        let byte = byte as u32;
        let code = if printable(byte) {
            byte
        } else {
            next_shifted += 1;
            next_shifted - 1
        };
        *slot = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
    }
    alphabet
}

fn byte_of_char() -> HashMap<char, u8> {
    byte_level_alphabet()
        .iter()
        .enumerate()
        .map(|(byte, c)| (*c, byte as u8))
        .collect()
}

/// A token's byte-level text back to the bytes it stands for; a character outside the
/// alphabet (not produced by byte-level BPE) keeps its UTF-8 form.
fn byte_level_to_bytes(token: &str, byte_of_char: &HashMap<char, u8>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(token.len());
    for c in token.chars() {
        match byte_of_char.get(&c) {
            Some(b) => bytes.push(*b),
            None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    bytes
}

/// Turns token bytes into text as they come, holding back a character whose bytes are split
/// across tokens until it is complete.
#[derive(Debug, Default)]
pub struct IncrementalDecoder {
    pending: Vec<u8>,
}

impl IncrementalDecoder {
    /// The text completed by `bytes` (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut text = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(valid) => {
                    text.push_str(valid);
                    self.pending.clear();
                    return text;
                }
                Err(e) => {
                    let valid_up_to = e.valid_up_to();
                    text.push_str(&String::from_utf8_lossy(&self.pending[..valid_up_to]));
                    match e.error_len() {
                        // Bytes that can never start a character: replace and go on.
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid_up_to + bad);
                        }
                        // An incomplete character at the end: wait for its other bytes.
                        None => {
                            self.pending.drain(..valid_up_to);
                            return text;
                        }
                    }
                }
            }
        }
    }

    /// What is left at the end of generation (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny vocabulary of the same shape as SmolLM2's: control tokens first, then every byte,
    /// then a few merged tokens.
    fn tiny_tokenizer() -> GgufTokenizer {
        let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
            .map(String::from)
            .to_vec();
        let mut token_types = vec![TOKEN_TYPE_CONTROL; 3];
        for c in byte_level_alphabet() {
            tokens.push(c.to_string());
            token_types.push(1);
        }
        let merges = [
            "h e", "l l", "ll o", "he llo", "Ġ w", "Ġw o", "Ġwo r", "Ġwor l", "Ġworl d", "2 0",
        ];
        for merge in merges {
            tokens.push(merge.replace(' ', ""));
            token_types.push(1);
        }
        GgufTokenizer::from_vocabulary(GgufVocabulary {
            tokens,
            token_types,
            merges: merges.map(String::from).to_vec(),
            bos_id: 1,
            eos_id: 2,
        })
        .unwrap()
    }

    fn round_trip(tokenizer: &GgufTokenizer, text: &str) -> String {
        tokenizer.decode(&tokenizer.encode(text).unwrap())
    }

    #[test]
    fn the_alphabet_maps_the_space_to_g_with_dot_and_every_byte_to_a_distinct_char() {
        let alphabet = byte_level_alphabet();
        assert_eq!(alphabet[b' ' as usize], 'Ġ');
        assert_eq!(alphabet[b'a' as usize], 'a');
        assert_eq!(alphabet[b'\n' as usize], 'Ċ');
        assert_eq!(byte_of_char().len(), 256);
    }

    #[test]
    fn ascii_text_round_trips() {
        let tokenizer = tiny_tokenizer();
        let text = "hello world, and 42 more!\n\tTabs  and  spaces ";
        assert_eq!(round_trip(&tokenizer, text), text);
    }

    #[test]
    fn accented_text_round_trips() {
        let tokenizer = tiny_tokenizer();
        let text = "Crème brûlée à São Paulo, Ærøskøbing, Łódź";
        assert_eq!(round_trip(&tokenizer, text), text);
    }

    #[test]
    fn emoji_and_other_scripts_round_trip() {
        let tokenizer = tiny_tokenizer();
        let text = "☕ 👩🏽‍💻 東京 Привет 🇫🇷";
        assert_eq!(round_trip(&tokenizer, text), text);
    }

    #[test]
    fn merges_apply_by_rank() {
        let tokenizer = tiny_tokenizer();
        let ids = tokenizer.encode("hello world").unwrap();
        let pieces: Vec<String> = ids
            .iter()
            .map(|id| String::from_utf8(tokenizer.token_bytes(*id).to_vec()).unwrap())
            .collect();
        assert_eq!(pieces, ["hello", " world"]);
    }

    #[test]
    fn digits_are_split_one_by_one() {
        let tokenizer = tiny_tokenizer();
        // "2 0" is a merge, but the pre-tokenizer never lets two digits meet.
        assert_eq!(tokenizer.encode("2024").unwrap().len(), 4);
    }

    #[test]
    fn special_tokens_encode_as_single_ids() {
        let tokenizer = tiny_tokenizer();
        let ids = tokenizer
            .encode_with_special_tokens("<|im_start|>user\nhello<|im_end|>")
            .unwrap();
        assert_eq!(ids.first(), Some(&1));
        assert_eq!(ids.last(), Some(&2));
        assert_eq!(
            ids.iter().filter(|id| tokenizer.is_special(**id)).count(),
            2
        );
        assert_eq!(tokenizer.special_token_id("<|im_end|>"), Some(2));
    }

    #[test]
    fn plain_encoding_keeps_special_token_text_as_text() {
        let tokenizer = tiny_tokenizer();
        let ids = tokenizer.encode("<|im_end|>").unwrap();
        assert!(ids.iter().all(|id| !tokenizer.is_special(*id)));
        assert_eq!(tokenizer.decode(&ids), "<|im_end|>");
    }

    #[test]
    fn control_tokens_decode_to_nothing() {
        let tokenizer = tiny_tokenizer();
        let mut ids = vec![1];
        ids.extend(tokenizer.encode("hello").unwrap());
        ids.push(2);
        assert_eq!(tokenizer.decode(&ids), "hello");
    }

    #[test]
    fn a_vocabulary_whose_types_do_not_match_its_tokens_is_refused() {
        let error = GgufTokenizer::from_vocabulary(GgufVocabulary {
            tokens: vec!["a".into(), "b".into()],
            token_types: vec![1],
            merges: Vec::new(),
            bos_id: 0,
            eos_id: 1,
        })
        .unwrap_err();
        assert!(error.contains("token types"), "{error}");
    }

    #[test]
    fn the_incremental_decoder_holds_back_a_split_character() {
        let mut decoder = IncrementalDecoder::default();
        let coffee = "☕".as_bytes();
        assert_eq!(decoder.push(b"a"), "a");
        assert_eq!(decoder.push(&coffee[..1]), "");
        assert_eq!(decoder.push(&coffee[1..2]), "");
        assert_eq!(decoder.push(&coffee[2..]), "☕");
        assert_eq!(decoder.finish(), "");
    }

    #[test]
    fn the_incremental_decoder_replaces_bytes_that_are_never_utf8() {
        let mut decoder = IncrementalDecoder::default();
        assert_eq!(decoder.push(&[b'a', 0xff, b'b']), "a\u{fffd}b");
        assert_eq!(decoder.push(&[0xe2, 0x98]), "");
        assert_eq!(decoder.finish(), "\u{fffd}");
    }
}
