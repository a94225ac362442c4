//! The few ONNX protobuf messages the exporter writes, encoded by hand.
//!
//! Protobuf's wire format is small: every field is a key (`field << 3 | wire type`) followed by
//! a varint (wire type 0), a little-endian 32-bit value (5) or a length-prefixed byte string
//! (2, also used for nested messages). Repeated scalars are written unpacked, one key per
//! element, which every protobuf reader accepts. Field numbers are those of `onnx.proto`.

/// A protobuf message under construction: fields are appended in the order written.
#[derive(Clone, Debug, Default)]
pub struct Msg(Vec<u8>);

impl Msg {
    /// An empty message.
    pub fn new() -> Self {
        Msg::default()
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.raw_varint(((field as u64) << 3) | wire as u64);
    }

    /// An `int32`/`int64`/enum field; negative numbers take ten bytes, as protobuf says.
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.raw_varint(v as u64);
        self
    }

    /// A `float` field.
    pub fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `bytes` field.
    pub fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.raw_varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    /// A `string` field.
    pub fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    /// A nested message field.
    pub fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

/// `TensorProto.DataType` values used here.
pub const FLOAT: i64 = 1;
/// `TensorProto.DataType` INT64.
pub const INT64: i64 = 7;

/// A `TensorProto` of float32 values in `raw_data` (little-endian).
pub fn tensor_f32(name: &str, dims: &[usize], values: &[f32]) -> Msg {
    debug_assert_eq!(dims.iter().product::<usize>(), values.len());
    let mut raw = Vec::with_capacity(values.len() * 4);
    for v in values {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    tensor_raw(name, dims, FLOAT, &raw)
}

/// A `TensorProto` of int64 values in `raw_data` (little-endian).
pub fn tensor_i64(name: &str, dims: &[usize], values: &[i64]) -> Msg {
    debug_assert_eq!(dims.iter().product::<usize>(), values.len());
    let mut raw = Vec::with_capacity(values.len() * 8);
    for v in values {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    tensor_raw(name, dims, INT64, &raw)
}

fn tensor_raw(name: &str, dims: &[usize], data_type: i64, raw: &[u8]) -> Msg {
    let mut t = Msg::new();
    for &d in dims {
        t.int(1, d as i64);
    }
    t.int(2, data_type);
    if !name.is_empty() {
        t.str(8, name);
    }
    t.bytes(9, raw);
    t
}

/// One dimension of a graph input or output: a fixed size or a named symbolic one (`N`).
#[derive(Clone, Debug)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A size known only at run time.
    Named(&'static str),
}

/// A `ValueInfoProto` for a float tensor of shape `dims`.
pub fn value_info(name: &str, dims: &[Dim]) -> Msg {
    let mut shape = Msg::new();
    for d in dims {
        let mut dim = Msg::new();
        match d {
            Dim::Fixed(n) => dim.int(1, *n as i64),
            Dim::Named(s) => dim.str(2, s),
        };
        shape.msg(1, &dim);
    }
    let mut tensor = Msg::new();
    tensor.int(1, FLOAT).msg(2, &shape);
    let mut ty = Msg::new();
    ty.msg(1, &tensor);
    let mut v = Msg::new();
    v.str(1, name).msg(2, &ty);
    v
}

/// A node attribute.
#[derive(Clone, Debug)]
pub enum Attr {
    /// One integer.
    Int(&'static str, i64),
    /// A list of integers.
    Ints(&'static str, Vec<i64>),
    /// One float.
    Float(&'static str, f32),
    /// A tensor.
    Tensor(&'static str, Msg),
}

impl Attr {
    fn encode(&self) -> Msg {
        // AttributeProto: name 1, f 2, i 3, t 5, ints 8, type 20 (FLOAT 1, INT 2, TENSOR 4, INTS 7).
        let mut a = Msg::new();
        match self {
            Attr::Int(name, v) => a.str(1, name).int(3, *v).int(20, 2),
            Attr::Ints(name, vs) => {
                a.str(1, name);
                for &v in vs {
                    a.int(8, v);
                }
                a.int(20, 7)
            }
            Attr::Float(name, v) => a.str(1, name).float(2, *v).int(20, 1),
            Attr::Tensor(name, t) => a.str(1, name).msg(5, t).int(20, 4),
        };
        a
    }
}

/// A `NodeProto`.
pub fn node(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: &[Attr]) -> Msg {
    let mut n = Msg::new();
    for i in inputs {
        n.str(1, i);
    }
    for o in outputs {
        n.str(2, o);
    }
    n.str(3, name).str(4, op_type);
    for a in attrs {
        n.msg(5, &a.encode());
    }
    n
}

/// The parts of a `GraphProto`.
pub struct GraphParts<'a> {
    /// The graph's name.
    pub name: &'a str,
    /// Nodes in topological order.
    pub nodes: &'a [Msg],
    /// Constant tensors (weights and small constants).
    pub initializers: &'a [Msg],
    /// Graph inputs.
    pub inputs: &'a [Msg],
    /// Graph outputs.
    pub outputs: &'a [Msg],
}

/// A whole `ModelProto` (IR version 8, default-domain opset `opset`) as bytes.
pub fn model(
    graph: &GraphParts,
    opset: i64,
    producer: &str,
    metadata: &[(&str, String)],
) -> Vec<u8> {
    let mut g = Msg::new();
    for n in graph.nodes {
        g.msg(1, n);
    }
    g.str(2, graph.name);
    for t in graph.initializers {
        g.msg(5, t);
    }
    for i in graph.inputs {
        g.msg(11, i);
    }
    for o in graph.outputs {
        g.msg(12, o);
    }
    let mut opset_id = Msg::new();
    opset_id.str(1, "").int(2, opset);
    let mut m = Msg::new();
    m.int(1, 8)
        .msg(8, &opset_id)
        .str(2, producer)
        .str(3, env!("CARGO_PKG_VERSION"))
        .msg(7, &g);
    for (k, v) in metadata {
        let mut e = Msg::new();
        e.str(1, k).str(2, v);
        m.msg(14, &e);
    }
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_follow_the_wire_format() {
        let mut m = Msg::new();
        m.int(1, 150);
        assert_eq!(m.clone().into_bytes(), vec![0x08, 0x96, 0x01]);
        let mut m = Msg::new();
        m.int(2, -1);
        let b = m.into_bytes();
        assert_eq!(b.len(), 11, "a negative int64 is a ten-byte varint");
        assert_eq!(b[10], 0x01);
        let mut m = Msg::new();
        m.str(2, "testing");
        assert_eq!(
            m.into_bytes(),
            vec![0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        let mut m = Msg::new();
        m.float(2, 1.0);
        assert_eq!(m.into_bytes(), vec![0x15, 0x00, 0x00, 0x80, 0x3f]);
    }

    #[test]
    fn float_tensors_are_raw_little_endian() {
        let b = tensor_f32("w", &[2], &[1.0, -2.0]).into_bytes();
        // dims 2, data_type 1, name "w", raw_data 8 bytes
        assert_eq!(&b[..6], &[0x08, 0x02, 0x10, 0x01, 0x42, 0x01]);
        assert_eq!(&b[7..10], &[0x4a, 0x08, 0x00]);
        assert_eq!(&b[10..13], &[0x00, 0x80, 0x3f]);
    }
}
