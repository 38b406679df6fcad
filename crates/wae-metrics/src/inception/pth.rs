//! Reader for legacy (non-zip) `torch.save` files, and conversion to safetensors.
//!
//! `pt_inception-2015-12-05-6726825d.pth` predates PyTorch's zip format
//! (1.6). A legacy file is five pickles and the raw storages, back to back:
//!
//! 1. the magic number `0x1950a86a20f9469cfc6c` (a pickled int),
//! 2. the protocol version 1001,
//! 3. `sys_info`: `{'protocol_version', 'little_endian', 'type_sizes'}`,
//! 4. the object itself (here the state_dict, an `OrderedDict` of tensors);
//!    each tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size,
//!    stride, ...)` where `storage` is a persistent id
//!    `('storage', torch.FloatStorage, key, location, numel, view_metadata)`,
//! 5. the sorted list of storage keys,
//!
//! then, for each key in that order, the element count as a little-endian i64
//! and the storage's bytes. The pickles use protocol 2; the small pickle
//! machine below implements the opcodes of protocols 0-4 that such files
//! contain and builds no Python objects beyond plain data.
//!
//! (candle's `candle_core::pickle` reads the zip format only and its LONG1
//! decoding overflows on the 10-byte magic number, hence this reader.)

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use safetensors::Dtype;

use crate::{Error, Result};

/// The magic number at the start of every legacy torch file.
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;
/// The legacy serialisation protocol version.
const LEGACY_PROTOCOL_VERSION: i64 = 1001;

/// A plain-data value of the pickle machine.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)` (REDUCE or NEWOBJ) of a callable we do not evaluate.
    Call {
        callable: Box<Value>,
        args: Box<Value>,
    },
    /// `obj.__setstate__(state)` (BUILD) on something that is not a dict.
    Built {
        obj: Box<Value>,
        state: Box<Value>,
    },
    PersistentId(Box<Value>),
    Mark,
}

impl Value {
    fn as_int(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i128::from(*b)),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_usize_tuple(&self) -> Option<Vec<usize>> {
        match self {
            Value::Tuple(v) | Value::List(v) => v
                .iter()
                .map(|x| x.as_int().and_then(|i| usize::try_from(i).ok()))
                .collect(),
            _ => None,
        }
    }
}

/// A cursor over the file's bytes with the reads the pickle machine needs.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::Pickle {
            path: self.path.to_path_buf(),
            message: format!("{} (at byte {})", message.into(), self.pos),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.err(format!("unexpected end of file reading {n} bytes")))?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self) -> Result<i32> {
        Ok(self.u32()? as i32)
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("unterminated text line"))?;
        let text = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.pos += len + 1;
        Ok(text)
    }
}

/// Runs one pickle (up to its STOP opcode) and returns its value.
/// `persistent_ids` collects nothing: persistent ids are kept as values.
fn unpickle(cur: &mut Cursor<'_>) -> Result<Value> {
    let mut stack: Vec<Value> = Vec::with_capacity(64);
    let mut memo: HashMap<u32, Value> = HashMap::new();
    fn pop(stack: &mut Vec<Value>, cur: &Cursor<'_>) -> Result<Value> {
        stack.pop().ok_or_else(|| cur.err("pickle stack underflow"))
    }
    fn pop_mark(stack: &mut Vec<Value>, cur: &Cursor<'_>) -> Result<Vec<Value>> {
        let mark = stack
            .iter()
            .rposition(|v| *v == Value::Mark)
            .ok_or_else(|| cur.err("pickle MARK not found"))?;
        let items = stack.split_off(mark + 1);
        stack.pop();
        Ok(items)
    }
    loop {
        let op = cur.u8()?;
        match op {
            0x80 => {
                // PROTO
                let proto = cur.u8()?;
                if proto > 5 {
                    return Err(cur.err(format!("unsupported pickle protocol {proto}")));
                }
            }
            0x95 => {
                // FRAME (protocol 4): a length prefix only.
                cur.u64()?;
            }
            b'.' => return pop(&mut stack, cur),
            b'(' => stack.push(Value::Mark),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'J' => stack.push(Value::Int(i128::from(cur.i32()?))),
            b'K' => stack.push(Value::Int(i128::from(cur.u8()?))),
            b'M' => stack.push(Value::Int(i128::from(cur.u16()?))),
            0x8a => {
                // LONG1: little-endian two's complement of n bytes.
                let n = cur.u8()? as usize;
                let bytes = cur.take(n)?;
                if n > 16 {
                    return Err(cur.err(format!("LONG1 of {n} bytes is too large")));
                }
                let mut v: i128 = 0;
                for (i, &b) in bytes.iter().enumerate() {
                    v |= i128::from(b) << (8 * i);
                }
                if n > 0 && n < 16 && bytes[n - 1] & 0x80 != 0 {
                    v -= 1i128 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => {
                let b = cur.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                stack.push(Value::Float(f64::from_be_bytes(a)));
            }
            b'X' => {
                let n = cur.u32()? as usize;
                let s = String::from_utf8_lossy(cur.take(n)?).into_owned();
                stack.push(Value::Str(s));
            }
            0x8c => {
                let n = cur.u8()? as usize;
                let s = String::from_utf8_lossy(cur.take(n)?).into_owned();
                stack.push(Value::Str(s));
            }
            b'T' => {
                // BINSTRING (Python 2 str): bytes read as latin-1 text.
                let n = cur.u32()? as usize;
                let s = cur.take(n)?.iter().map(|&b| b as char).collect();
                stack.push(Value::Str(s));
            }
            b'U' => {
                let n = cur.u8()? as usize;
                let s = cur.take(n)?.iter().map(|&b| b as char).collect();
                stack.push(Value::Str(s));
            }
            b'B' => {
                let n = cur.u32()? as usize;
                stack.push(Value::Bytes(cur.take(n)?.to_vec()));
            }
            b'C' => {
                let n = cur.u8()? as usize;
                stack.push(Value::Bytes(cur.take(n)?.to_vec()));
            }
            b')' => stack.push(Value::Tuple(vec![])),
            b't' => {
                let items = pop_mark(&mut stack, cur)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(cur.err("pickle stack underflow in TUPLEn"));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b']' => stack.push(Value::List(vec![])),
            b'l' => {
                let items = pop_mark(&mut stack, cur)?;
                stack.push(Value::List(items));
            }
            b'a' => {
                let v = pop(&mut stack, cur)?;
                match stack.last_mut() {
                    Some(Value::List(list)) => list.push(v),
                    _ => return Err(cur.err("APPEND on a non-list")),
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack, cur)?;
                match stack.last_mut() {
                    Some(Value::List(list)) => list.extend(items),
                    _ => return Err(cur.err("APPENDS on a non-list")),
                }
            }
            b'}' => stack.push(Value::Dict(vec![])),
            b'd' => {
                let items = pop_mark(&mut stack, cur)?;
                stack.push(Value::Dict(pairs(items, cur)?));
            }
            b's' => {
                let v = pop(&mut stack, cur)?;
                let k = pop(&mut stack, cur)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => d.push((k, v)),
                    _ => return Err(cur.err("SETITEM on a non-dict")),
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack, cur)?;
                let items = pairs(items, cur)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => d.extend(items),
                    _ => return Err(cur.err("SETITEMS on a non-dict")),
                }
            }
            b'c' => {
                let module = cur.line()?;
                let name = cur.line()?;
                stack.push(Value::Global { module, name });
            }
            0x93 => {
                // STACK_GLOBAL (protocol 4)
                let name = pop(&mut stack, cur)?;
                let module = pop(&mut stack, cur)?;
                match (module, name) {
                    (Value::Str(module), Value::Str(name)) => {
                        stack.push(Value::Global { module, name })
                    }
                    _ => return Err(cur.err("STACK_GLOBAL needs two strings")),
                }
            }
            b'R' | 0x81 => {
                // REDUCE / NEWOBJ
                let args = pop(&mut stack, cur)?;
                let callable = pop(&mut stack, cur)?;
                stack.push(reduce(callable, args));
            }
            b'b' => {
                let state = pop(&mut stack, cur)?;
                let obj = pop(&mut stack, cur)?;
                stack.push(match obj {
                    // OrderedDict state (`_metadata`) does not change the items.
                    Value::Dict(d) => Value::Dict(d),
                    obj => Value::Built {
                        obj: Box::new(obj),
                        state: Box::new(state),
                    },
                });
            }
            b'Q' => {
                let pid = pop(&mut stack, cur)?;
                stack.push(Value::PersistentId(Box::new(pid)));
            }
            b'q' => {
                let id = u32::from(cur.u8()?);
                memo_put(&mut memo, id, &stack, cur)?;
            }
            b'r' => {
                let id = cur.u32()?;
                memo_put(&mut memo, id, &stack, cur)?;
            }
            0x94 => {
                // MEMOIZE (protocol 4)
                let id = memo.len() as u32;
                memo_put(&mut memo, id, &stack, cur)?;
            }
            b'h' => {
                let id = u32::from(cur.u8()?);
                stack.push(memo_get(&memo, id, cur)?);
            }
            b'j' => {
                let id = cur.u32()?;
                stack.push(memo_get(&memo, id, cur)?);
            }
            b'0' => {
                pop(&mut stack, cur)?;
            }
            b'2' => {
                let top = stack
                    .last()
                    .cloned()
                    .ok_or_else(|| cur.err("DUP on an empty stack"))?;
                stack.push(top);
            }
            other => {
                return Err(cur.err(format!("unsupported pickle opcode 0x{other:02x}")));
            }
        }
    }
}

fn pairs(items: Vec<Value>, cur: &Cursor<'_>) -> Result<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return Err(cur.err("odd number of items for a dict"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn memo_put(
    memo: &mut HashMap<u32, Value>,
    id: u32,
    stack: &[Value],
    cur: &Cursor<'_>,
) -> Result<()> {
    let top = stack
        .last()
        .ok_or_else(|| cur.err("memo put on an empty stack"))?;
    memo.insert(id, top.clone());
    Ok(())
}

fn memo_get(memo: &HashMap<u32, Value>, id: u32, cur: &Cursor<'_>) -> Result<Value> {
    memo.get(&id)
        .cloned()
        .ok_or_else(|| cur.err(format!("missing memo entry {id}")))
}

/// REDUCE: dictionaries become plain dicts (their items follow as SETITEMS),
/// everything else stays an unevaluated call.
fn reduce(callable: Value, args: Value) -> Value {
    if let Value::Global { module, name } = &callable {
        if module == "collections" && (name == "OrderedDict" || name == "defaultdict") {
            return Value::Dict(vec![]);
        }
        if module == "builtins" && name == "dict" {
            return Value::Dict(vec![]);
        }
    }
    Value::Call {
        callable: Box::new(callable),
        args: Box::new(args),
    }
}

/// Element type of a torch storage class (`torch.FloatStorage`, ...).
fn storage_dtype(class: &str) -> Option<(Dtype, usize)> {
    Some(match class {
        "FloatStorage" => (Dtype::F32, 4),
        "DoubleStorage" => (Dtype::F64, 8),
        "HalfStorage" => (Dtype::F16, 2),
        "BFloat16Storage" => (Dtype::BF16, 2),
        "LongStorage" => (Dtype::I64, 8),
        "IntStorage" => (Dtype::I32, 4),
        "ShortStorage" => (Dtype::I16, 2),
        "CharStorage" => (Dtype::I8, 1),
        "ByteStorage" => (Dtype::U8, 1),
        "BoolStorage" => (Dtype::BOOL, 1),
        _ => return None,
    })
}

/// Where a tensor's data lives: storage key, element offset, size, stride.
struct TensorRef {
    name: String,
    key: String,
    dtype: Dtype,
    elem_size: usize,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// A tensor read from a `.pth` file: contiguous little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct PthTensor {
    /// The state_dict key.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// The elements, row-major, little-endian.
    pub data: Vec<u8>,
}

/// Interprets one state_dict entry as a tensor reference.
fn tensor_ref(name: &str, value: &Value) -> Option<TensorRef> {
    let Value::Call { callable, args } = value else {
        return None;
    };
    let Value::Global { module, name: func } = callable.as_ref() else {
        return None;
    };
    let Value::Tuple(args) = args.as_ref() else {
        return None;
    };
    if module != "torch._utils" {
        return None;
    }
    match func.as_str() {
        // _rebuild_parameter(data, requires_grad, backward_hooks)
        "_rebuild_parameter" | "_rebuild_parameter_with_state" => tensor_ref(name, args.first()?),
        // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
        // _rebuild_tensor(storage, offset, size, stride)
        "_rebuild_tensor_v2" | "_rebuild_tensor" if args.len() >= 4 => {
            let Value::PersistentId(pid) = &args[0] else {
                return None;
            };
            let Value::Tuple(pid) = pid.as_ref() else {
                return None;
            };
            // ('storage', storage_type, key, location, numel[, view_metadata])
            if pid.len() < 5 || pid[0].as_str() != Some("storage") {
                return None;
            }
            let Value::Global { name: class, .. } = &pid[1] else {
                return None;
            };
            let (dtype, elem_size) = storage_dtype(class)?;
            let key = match &pid[2] {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                _ => return None,
            };
            let mut offset = usize::try_from(args[1].as_int()?).ok()?;
            // Pre-1.0 files: a view of a root storage, (view_key, view_offset, view_size).
            if let Some(Value::Tuple(view)) = pid.get(5)
                && let (Some(Value::Int(view_offset)), Some(_)) = (view.get(1), view.get(2))
            {
                offset = offset.checked_add(usize::try_from(*view_offset).ok()?)?;
            }
            Some(TensorRef {
                name: name.to_string(),
                key,
                dtype,
                elem_size,
                offset,
                shape: args[2].as_usize_tuple()?,
                stride: args[3].as_usize_tuple()?,
            })
        }
        _ => None,
    }
}

/// Copies a (possibly strided) tensor out of its storage bytes.
fn gather(t: &TensorRef, storage: &[u8], path: &Path) -> Result<Vec<u8>> {
    let es = t.elem_size;
    let bad = |what: &str| Error::Pickle {
        path: path.to_path_buf(),
        message: format!("tensor {}: {what}", t.name),
    };
    if t.stride.len() != t.shape.len() {
        return Err(bad("stride and size have different lengths"));
    }
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| bad("size overflows"))?;
    if numel == 0 {
        return Ok(vec![]);
    }
    // Largest element index touched, to bound-check once (checked: sizes come from the file).
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&n, &s)| {
            (n - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
        })
        .ok_or_else(|| bad("strides overflow"))?;
    let end = last
        .checked_add(1)
        .and_then(|x| x.checked_mul(es))
        .ok_or_else(|| bad("strides overflow"))?;
    if end > storage.len() {
        return Err(bad("data lies outside its storage"));
    }
    let mut out = Vec::with_capacity(numel * es);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let elem = t.offset
            + index
                .iter()
                .zip(&t.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        out.extend_from_slice(&storage[elem * es..(elem + 1) * es]);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

/// Reads every tensor of a legacy-format (non-zip) `torch.save` file of a
/// state_dict, in the file's order, as raw little-endian data.
pub fn read_pth_raw(path: &Path) -> Result<Vec<PthTensor>> {
    if !path.is_file() {
        return Err(Error::MissingWeights {
            path: path.to_path_buf(),
        });
    }
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if data.starts_with(b"PK") {
        return Err(Error::Pickle {
            path: path.to_path_buf(),
            message: "this is a zip-format torch file (PyTorch >= 1.6), not the legacy format; \
                      load it with candle_core::pickle"
                .into(),
        });
    }
    let mut cur = Cursor {
        data: &data,
        pos: 0,
        path,
    };
    let magic = unpickle(&mut cur)?;
    if magic.as_int() != Some(LEGACY_MAGIC as i128) {
        return Err(cur.err(format!("not a legacy torch file (magic number {magic:?})")));
    }
    let version = unpickle(&mut cur)?;
    if version.as_int() != Some(i128::from(LEGACY_PROTOCOL_VERSION)) {
        return Err(cur.err(format!("unsupported legacy protocol version {version:?}")));
    }
    let sys_info = unpickle(&mut cur)?;
    if let Value::Dict(items) = &sys_info {
        for (k, v) in items {
            if k.as_str() == Some("little_endian") && *v == Value::Bool(false) {
                return Err(cur.err("big-endian torch files are not supported"));
            }
        }
    }
    let object = unpickle(&mut cur)?;
    let Value::Dict(entries) = object else {
        return Err(cur.err("the file does not hold a state_dict (a dict of tensors)"));
    };
    let keys = unpickle(&mut cur)?;
    let Value::List(keys) = keys else {
        return Err(cur.err("the storage key list is missing"));
    };
    // Raw storages follow in key order: i64 element count, then the bytes.
    let refs: Vec<TensorRef> = entries
        .iter()
        .filter_map(|(k, v)| k.as_str().and_then(|name| tensor_ref(name, v)))
        .collect();
    let elem_size_of: HashMap<&str, usize> =
        refs.iter().map(|t| (t.key.as_str(), t.elem_size)).collect();
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in &keys {
        let key = match key {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            other => return Err(cur.err(format!("bad storage key {other:?}"))),
        };
        let count = cur.u64()? as usize;
        let es = *elem_size_of
            .get(key.as_str())
            .ok_or_else(|| cur.err(format!("storage {key} is used by no tensor")))?;
        let bytes = count
            .checked_mul(es)
            .ok_or_else(|| cur.err("storage size overflows"))?;
        storages.insert(key, cur.take(bytes)?);
    }
    refs.iter()
        .map(|t| {
            let storage = storages.get(&t.key).ok_or_else(|| Error::Pickle {
                path: path.to_path_buf(),
                message: format!("tensor {}: storage {} missing", t.name, t.key),
            })?;
            Ok(PthTensor {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                data: gather(t, storage, path)?,
            })
        })
        .collect()
}

/// Reads a legacy-format `torch.save` state_dict into candle tensors on the
/// CPU (f32, f64, f16, bf16, i64, u8; other dtypes are skipped).
pub fn read_pth(path: &Path) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for t in read_pth_raw(path)? {
        let dtype = match t.dtype {
            Dtype::F32 => candle_core::DType::F32,
            Dtype::F64 => candle_core::DType::F64,
            Dtype::F16 => candle_core::DType::F16,
            Dtype::BF16 => candle_core::DType::BF16,
            Dtype::I64 => candle_core::DType::I64,
            Dtype::U8 => candle_core::DType::U8,
            _ => continue,
        };
        let tensor = Tensor::from_raw_buffer(&t.data, dtype, &t.shape, &Device::Cpu)?;
        out.insert(t.name, tensor);
    }
    Ok(out)
}

/// Converts a legacy-format `.pth` state_dict (such as
/// `pt_inception-2015-12-05-6726825d.pth`) to a safetensors file with the
/// same key names, dtypes and shapes. The file is written to a temporary name
/// beside `out` and renamed. Returns the number of tensors written.
pub fn convert_pth(pth: &Path, out: &Path) -> Result<usize> {
    let tensors = read_pth_raw(pth)?;
    let views = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.data)
                .map(|v| (t.name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut metadata = HashMap::new();
    metadata.insert(
        "source".to_string(),
        pth.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let bytes = safetensors::serialize(views, Some(metadata))?;
    wae_io::write_atomic(out, &bytes)?;
    Ok(tensors.len())
}

/// Checks that the file's sha256 is `expected` (hex, any case), e.g.
/// [`super::FID_WEIGHTS_SHA256`] for the downloaded Inception weights.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = wae_io::sha256_file(path)?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(Error::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_lowercase(),
            actual,
        })
    }
}
