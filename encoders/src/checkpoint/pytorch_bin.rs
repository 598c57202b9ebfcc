//! Reading `pytorch_model.bin`: what `torch.save` writes for a state dict (names to tensors),
//! through the `pytorch-reader` crate (tracel-ai/burn), which parses the file's pickle in Rust.
//!
//! Every container `torch.save` has written is read: the zip archive of PyTorch 1.6 and later,
//! and the legacy pickle stream of PyTorch 0.1.10 to 1.5 in which many older hub checkpoints were
//! published. There is no Python in the process, and pickled code is never executed: a pickle
//! that calls anything other than tensor serialisation (`os.system`, a training script's class)
//! leaves an object the reader does not interpret, which [`read`] refuses by name. Shared storages
//! (a tied decoder), views at an offset and non-contiguous views are gathered into contiguous
//! tensors.
//!
//! libtorch's own reader (tch's `Tensor::loadz_multi`) is not used: its C++ unpickler (PyTorch
//! 2.11.0) reads a `collections.OrderedDict`, what `model.state_dict()` returns and HF saved, as
//! None.

use std::io::Read;
use std::path::Path;

use pytorch_reader::{DType, PickleValue, PytorchReader};
use tch::{Kind, Tensor};

use crate::Error;

/// What a weights file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// `model.safetensors`: an 8-byte little-endian header length, then a JSON header.
    Safetensors,
    /// `pytorch_model.bin`: a file `torch.save` wrote (a zip archive, or the legacy pickle stream).
    TorchSave,
}

/// Reads the format of the weights file at `path` from its first bytes: a safetensors header (its
/// JSON starts at byte 8), else a `torch.save` file, which [`read`] checks in full.
///
/// # Errors
/// A file that cannot be read, or one too short to be either.
pub fn format_of(path: &Path) -> Result<WeightsFormat, Error> {
    let error = |message: String| Error::Read { path: path.display().to_string(), message };
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .and_then(|file| file.take(512).read_to_end(&mut head))
        .map_err(|err| error(err.to_string()))?;
    if let Some(pointer) = lfs_pointer(&head) {
        return Err(error(pointer));
    }
    match head.len() {
        n if n < 9 => Err(error(format!("{n} bytes: too short for safetensors or a torch.save file"))),
        _ if head[8] == b'{' => Ok(WeightsFormat::Safetensors),
        _ => Ok(WeightsFormat::TorchSave),
    }
}

/// What a Git LFS pointer file (what `git clone` leaves without `git lfs`: three text lines,
/// `version https://git-lfs.github.com/spec/v1`, the object's sha256 and size) stands for, said
/// as an error message; `None` for any other start of a file.
fn lfs_pointer(head: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(head).ok()?;
    if !text.starts_with("version https://git-lfs.github.com/spec/") {
        return None;
    }
    let field = |key: &str| text.lines().find_map(|line| line.strip_prefix(key)).map(str::trim);
    let size = field("size ").map_or_else(String::new, |size| format!(", {size} bytes"));
    Some(format!(
        "this is a Git LFS pointer ({}{size}), not the weights: run `git lfs pull` in the model's repository \
         (or download the file itself, e.g. from the hub), then run again",
        field("oid ").unwrap_or("an LFS object")
    ))
}

/// The tensors of the state dict `torch.save` wrote to `path`, on the CPU, each contiguous and in
/// the dtype it was saved in (HF's names, e.g. `bert.encoder.layer.0.attention.self.query.weight`).
///
/// # Errors
/// A file that is not a `torch.save` file, one that disagrees with itself (truncated, a storage
/// shorter than its tensors), or one that is not a state dict: its root is not a dictionary, or
/// one of its values is not a tensor (a training checkpoint's step, an object of a pickled
/// class). Each names the file and what was found.
pub fn read(path: &Path) -> Result<Vec<(String, Tensor)>, Error> {
    let tensors = read_state_dict(path, true)?;
    Ok(tensors.into_iter().map(|(name, _, value)| (name, value.expect("read with data"))).collect())
}

/// The names and shapes of the tensors of the `torch.save` file at `path`, sorted by name,
/// without reading their data: the file's container, root and dtypes are checked as [`read`]
/// checks them, but a storage shorter than its tensors shows only when [`read`] reads it.
///
/// # Errors
/// As [`read`], but for the storages' lengths.
pub fn shapes(path: &Path) -> Result<Vec<(String, Vec<i64>)>, Error> {
    Ok(read_state_dict(path, false)?.into_iter().map(|(name, shape, _)| (name, shape)).collect())
}

/// The tensors of a state dict: name, shape and, with `read_data`, the values.
type StateDictEntry = (String, Vec<i64>, Option<Tensor>);

fn read_state_dict(path: &Path, read_data: bool) -> Result<Vec<StateDictEntry>, Error> {
    let shown = path.display().to_string();
    let error = |message: String| Error::Read { path: shown.clone(), message };
    let not_torch_save = |err: pytorch_reader::PytorchError| {
        error(format!("not a state dict that torch.save wrote, or a damaged one: {err}"))
    };
    // The root object first: a state dict maps names to tensors and holds nothing else but the
    // `_metadata` attribute `Module.state_dict()` sets on its `OrderedDict` (each module's version
    // number), which the reader shows as an entry.
    match PytorchReader::read_pickle_data(path, None).map_err(not_torch_save)? {
        PickleValue::Dict(entries) => {
            let mut others: Vec<String> = entries
                .iter()
                .filter(|(name, value)| match value {
                    PickleValue::Unsupported(kind) => kind != "torch.Tensor",
                    PickleValue::Dict(_) => name.as_str() != "_metadata",
                    _ => true,
                })
                .map(|(name, value)| format!("`{name}` ({})", describe(value)))
                .collect();
            others.sort();
            if !others.is_empty() {
                return Err(error(format!(
                    "not a state dict: {} not a tensor (a training checkpoint or a pickled object; save \
                     `model.state_dict()` instead)",
                    if others.len() == 1 { format!("{} is", others[0]) } else { format!("{} are", others.join(", ")) }
                )));
            }
        }
        other => return Err(error(format!("not a state dict: its root is {}, not a dictionary", describe(&other)))),
    }
    let reader = PytorchReader::new(path).map_err(not_torch_save)?;
    let mut tensors = Vec::with_capacity(reader.len());
    for (name, tensor) in reader.into_tensors() {
        let kind = kind_of(tensor.dtype())
            .ok_or_else(|| error(format!("tensor `{name}` is {:?}, which the suite does not load", tensor.dtype())))?;
        let shape: Vec<i64> = tensor.shape().iter().map(|&extent| extent as i64).collect();
        let value = match read_data {
            true => {
                let bytes = tensor.read().map_err(|err| error(err.to_string()))?;
                Some(Tensor::f_from_data_size(&bytes, &shape, kind).map_err(|err| error(format!("`{name}`: {err}")))?)
            }
            false => None,
        };
        tensors.push((name, shape, value));
    }
    if tensors.is_empty() {
        return Err(error("holds no tensors".to_owned()));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

fn describe(value: &PickleValue) -> String {
    match value {
        PickleValue::None => "None".to_owned(),
        PickleValue::Bool(_) => "a bool".to_owned(),
        PickleValue::Int(_) => "an int".to_owned(),
        PickleValue::Float(_) => "a float".to_owned(),
        PickleValue::String(_) => "a string".to_owned(),
        PickleValue::List(_) => "a list".to_owned(),
        PickleValue::Dict(_) => "a dictionary".to_owned(),
        PickleValue::Bytes(_) => "bytes".to_owned(),
        PickleValue::Unsupported(kind) => format!("a `{kind}` object"),
    }
}

/// The tch kind of a stored element type; `None` for the unsigned widths libtorch lacks.
fn kind_of(dtype: DType) -> Option<Kind> {
    Some(match dtype {
        DType::F64 => Kind::Double,
        DType::F32 => Kind::Float,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::I64 => Kind::Int64,
        DType::I32 => Kind::Int,
        DType::I16 => Kind::Int16,
        DType::I8 => Kind::Int8,
        DType::U8 => Kind::Uint8,
        DType::Bool => Kind::Bool,
        DType::U64 | DType::U32 | DType::U16 => return None,
    })
}
