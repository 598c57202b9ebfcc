//! `.safetensors` files read by one parser for both the check before any work and the load, so
//! that the check refuses exactly what the load would (format: an 8-byte little-endian header
//! length, a JSON header naming each tensor's `dtype`, `shape` and `data_offsets` into the byte
//! buffer that follows, and an optional `__metadata__` object; safetensors 0.4).
//!
//! Read as HF `transformers` 5.24.0 reads what its own writers and others' produce: `__metadata__`
//! is not interpreted (any JSON is accepted, e.g. a number where the format's writers put
//! strings), tensors may share bytes (tied weights written at one offset), and integer dtypes
//! that torch cannot hold (`U16`, `U32`, `U64`) are widened exactly to the next signed type
//! (they are buffers no model variable takes). Refused, naming the tensor: a dtype the format
//! does not have, offsets outside the buffer or of a length other than the shape's, and negative
//! dimensions.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use tch::{Kind, Tensor};

use crate::Error;

/// One tensor's entry in the header, checked against the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The format's dtype name (`F32`, `BF16`, `U16`, ...).
    pub dtype: String,
    /// The tensor's shape.
    pub shape: Vec<i64>,
    /// Its bytes within the buffer: `begin..end`.
    pub begin: u64,
    /// The end of its bytes.
    pub end: u64,
}

/// A file's header: where the buffer starts and each tensor's entry, by name.
#[derive(Debug, Clone)]
pub struct Header {
    /// The offset of the byte buffer in the file (8 + the header's length).
    pub data_start: u64,
    /// The tensors, by name.
    pub entries: BTreeMap<String, Entry>,
}

/// The size in bytes of one element of `dtype` and the torch kind it is read as (`None`: read
/// as a wider kind, [`widened`]); `None` for a name the format does not have.
fn dtype(dtype: &str) -> Option<(u64, Option<Kind>)> {
    Some(match dtype {
        "BOOL" => (1, Some(Kind::Bool)),
        "U8" => (1, Some(Kind::Uint8)),
        "I8" => (1, Some(Kind::Int8)),
        "F8_E5M2" => (1, Some(Kind::Float8e5m2)),
        "F8_E4M3" => (1, Some(Kind::Float8e4m3fn)),
        "I16" => (2, Some(Kind::Int16)),
        "F16" => (2, Some(Kind::Half)),
        "BF16" => (2, Some(Kind::BFloat16)),
        "I32" => (4, Some(Kind::Int)),
        "F32" => (4, Some(Kind::Float)),
        "I64" => (8, Some(Kind::Int64)),
        "F64" => (8, Some(Kind::Double)),
        "U16" | "U32" | "U64" => (dtype[1..].parse::<u64>().ok()? / 8, None),
        _ => return None,
    })
}

/// Reads and checks the header of the safetensors file at `path`, without reading the tensors.
///
/// # Errors
/// [`Error::Read`] naming the file, and the tensor where one is at fault.
pub fn header(path: &Path) -> Result<Header, Error> {
    let shown = path.display().to_string();
    let error = |message: String| Error::Read { path: shown.clone(), message };
    let mut file = std::fs::File::open(path).map_err(|err| error(err.to_string()))?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).map_err(|err| error(format!("not a safetensors file: {err}")))?;
    let length = u64::from_le_bytes(length);
    let size = file.metadata().map_err(|err| error(err.to_string()))?.len();
    if length > size.saturating_sub(8) || length > 100 << 20 {
        return Err(error(format!("not a safetensors file: a header of {length} bytes in a file of {size}")));
    }
    let mut text = vec![0u8; length as usize];
    file.read_exact(&mut text).map_err(|err| error(err.to_string()))?;
    let mut values: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&text).map_err(|err| error(format!("not a safetensors header: {err}")))?;
    values.remove("__metadata__");
    let data_start = 8 + length;
    let buffer = size - data_start;
    #[derive(serde::Deserialize)]
    struct Raw {
        dtype: String,
        shape: Vec<i64>,
        data_offsets: (u64, u64),
    }
    let mut entries = BTreeMap::new();
    for (name, value) in values {
        let tensor_error = |message: String| error(format!("tensor `{name}`: {message}"));
        let raw: Raw = serde_json::from_value(value).map_err(|err| tensor_error(err.to_string()))?;
        let Some((element, _)) = dtype(&raw.dtype) else {
            return Err(tensor_error(format!(
                "dtype `{}` is not a safetensors dtype (the file is damaged or not safetensors)",
                raw.dtype
            )));
        };
        if raw.shape.iter().any(|&dim| dim < 0) {
            return Err(tensor_error(format!("a negative dimension in shape {:?}", raw.shape)));
        }
        let (begin, end) = raw.data_offsets;
        let expected = raw.shape.iter().try_fold(element, |bytes, &dim| bytes.checked_mul(dim as u64));
        if begin > end || end > buffer || expected != Some(end - begin) {
            return Err(tensor_error(format!(
                "data_offsets [{begin}, {end}] do not hold a {} tensor of shape {:?} in a buffer of {buffer} bytes \
                 (the file is truncated or its header damaged: download it again)",
                raw.dtype, raw.shape
            )));
        }
        entries.insert(name, Entry { dtype: raw.dtype, shape: raw.shape, begin, end });
    }
    Ok(Header { data_start, entries })
}

/// The kind an entry of `dtype` is read as: its own, or for unsigned dtypes torch lacks the
/// next signed kind that holds every value (`U64` values at or above 2^63 are refused).
fn widened(dtype_name: &str) -> Kind {
    match dtype(dtype_name) {
        Some((_, Some(kind))) => kind,
        _ if dtype_name == "U16" => Kind::Int,
        _ => Kind::Int64,
    }
}

/// The tensors of the safetensors file at `path`, on the CPU, as [`header`] checked them.
///
/// # Errors
/// [`Error::Read`] as [`header`], or an I/O error naming the file.
pub fn read(path: &Path) -> Result<BTreeMap<String, Tensor>, Error> {
    let header = header(path)?;
    let shown = path.display().to_string();
    let error = |message: String| Error::Read { path: shown.clone(), message };
    let mut file = std::fs::File::open(path).map_err(|err| error(err.to_string()))?;
    let mut tensors = BTreeMap::new();
    let mut bytes = Vec::new();
    for (name, entry) in &header.entries {
        bytes.resize((entry.end - entry.begin) as usize, 0);
        file.seek(SeekFrom::Start(header.data_start + entry.begin))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|err| error(format!("tensor `{name}`: {err}")))?;
        let tensor = match entry.dtype.as_str() {
            "U16" => {
                let values: Vec<i32> =
                    bytes.chunks_exact(2).map(|b| i32::from(u16::from_le_bytes([b[0], b[1]]))).collect();
                Tensor::from_slice(&values).reshape(&entry.shape)
            }
            "U32" => {
                let values: Vec<i64> = bytes
                    .chunks_exact(4)
                    .map(|b| i64::from(u32::from_le_bytes(b.try_into().expect("4 bytes"))))
                    .collect();
                Tensor::from_slice(&values).reshape(&entry.shape)
            }
            "U64" => {
                let values = bytes
                    .chunks_exact(8)
                    .map(|b| i64::try_from(u64::from_le_bytes(b.try_into().expect("8 bytes"))))
                    .collect::<Result<Vec<i64>, _>>()
                    .map_err(|_| error(format!("tensor `{name}`: a U64 value at or above 2^63 (torch has no u64)")))?;
                Tensor::from_slice(&values).reshape(&entry.shape)
            }
            dtype_name => Tensor::f_from_data_size(&bytes, &entry.shape, widened(dtype_name))
                .map_err(|err| error(format!("tensor `{name}`: {err}")))?,
        };
        tensors.insert(name.clone(), tensor);
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> tempfile::NamedTempFile {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    #[test]
    fn metadata_of_any_kind_tied_bytes_and_unsigned_buffers_load() {
        let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).chain([7, 0, 255, 255]).collect();
        let header = r#"{"__metadata__": {"format": "pt", "step": 1200},
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "tied": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "ids": {"dtype": "U16", "shape": [2], "data_offsets": [8, 12]}}"#;
        let file = file(header, &data);
        let tensors = read(file.path()).unwrap();
        assert_eq!(Vec::<f32>::try_from(&tensors["tied"]).unwrap(), [1.0, 2.0]);
        assert_eq!(Vec::<i32>::try_from(&tensors["ids"]).unwrap(), [7, 65535]);
    }

    #[test]
    fn what_the_load_cannot_read_is_refused_by_the_header_naming_the_tensor() {
        let data = [0u8; 8];
        for (entry, expected) in [
            (r#"{"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}"#, "do not hold a F32 tensor of shape [3]"),
            (r#"{"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}"#, "in a buffer of 8 bytes"),
            (r#"{"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}"#, "dtype `Q4` is not a safetensors dtype"),
            (r#"{"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}"#, "a negative dimension"),
        ] {
            let file = file(&format!(r#"{{"w": {entry}}}"#), &data);
            let message = header(file.path()).unwrap_err().to_string();
            assert!(message.contains("tensor `w`: ") && message.contains(expected), "{message}");
        }
    }
}
