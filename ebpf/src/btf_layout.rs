//! The Rust mirrors of `bpf/lib/abi.h` checked field by field against the
//! BTF that clang wrote into the embedded object: a field renamed, resized
//! or moved on either side fails here, before a map write lands in the
//! wrong bytes on the kernel side.
//!
//! aya-obj parses BTF but keeps struct members private, so this reads the
//! few kinds it needs itself (the format: the kernel's
//! Documentation/bpf/btf.rst).

use std::mem::{offset_of, size_of};

use object::{Object, ObjectSection};

use crate::events::RawEvent;
use crate::maps::{Asker, AskerKey, Config, PortRange, RuleValue};

const BTF_MAGIC: u16 = 0xeb9f;

// BTF kinds (info bits 24..28).
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug)]
struct Member {
    name: String,
    type_id: u32,
    /// Bit offset inside the struct.
    offset: u32,
}

#[derive(Debug, Default)]
struct Type {
    kind: u32,
    name: String,
    /// Size for INT, STRUCT, UNION, ENUM; the referred type for PTR,
    /// TYPEDEF and the qualifiers.
    size_or_type: u32,
    /// ARRAY: element type and count.
    array: Option<(u32, u32)>,
    members: Vec<Member>,
}

struct Btf {
    /// Indexed by type id; id 0 is void.
    types: Vec<Type>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

impl Btf {
    /// The `.BTF` section of the object the loader embeds.
    fn of_embedded_object() -> Self {
        let elf = object::File::parse(crate::programs::OBJECT).expect("the embedded BPF object");
        let section = elf
            .section_by_name(".BTF")
            .expect("the BPF object has no .BTF section: build.rs must compile with -g");
        Self::parse(section.data().unwrap())
    }

    fn parse(b: &[u8]) -> Self {
        assert_eq!(u16_at(b, 0), BTF_MAGIC, "not little-endian BTF");
        let hdr_len = u32_at(b, 4) as usize;
        let (type_off, type_len) = (u32_at(b, 8) as usize, u32_at(b, 12) as usize);
        let str_off = u32_at(b, 16) as usize;
        let strings = &b[hdr_len + str_off..];
        let name = |off: u32| {
            let s = &strings[off as usize..];
            String::from_utf8_lossy(&s[..s.iter().position(|&c| c == 0).unwrap()]).into_owned()
        };
        let types_bytes = &b[hdr_len + type_off..hdr_len + type_off + type_len];
        let mut types = vec![Type::default()];
        let mut at = 0;
        while at < types_bytes.len() {
            let t = &types_bytes[at..];
            let info = u32_at(t, 4);
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let kind_flag = info >> 31 == 1;
            let mut ty = Type {
                kind,
                name: name(u32_at(t, 0)),
                size_or_type: u32_at(t, 8),
                ..Type::default()
            };
            let extra = &t[12..];
            let extra_len = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => {
                    ty.array = Some((u32_at(extra, 0), u32_at(extra, 8)));
                    12
                }
                KIND_STRUCT | KIND_UNION => {
                    ty.members = (0..vlen)
                        .map(|i| {
                            let m = &extra[i * 12..];
                            let offset = u32_at(m, 8);
                            Member {
                                name: name(u32_at(m, 0)),
                                type_id: u32_at(m, 4),
                                // With kind_flag the top byte is a bitfield's size.
                                offset: if kind_flag {
                                    offset & 0xff_ffff
                                } else {
                                    offset
                                },
                            }
                        })
                        .collect();
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                _ => 0,
            };
            types.push(ty);
            at += 12 + extra_len;
        }
        Self { types }
    }

    fn struct_named(&self, name: &str) -> &Type {
        self.types
            .iter()
            .find(|t| t.kind == KIND_STRUCT && t.name == name)
            .unwrap_or_else(|| panic!("struct {name} is not in the object's BTF"))
    }

    fn size_of(&self, id: u32) -> usize {
        let t = &self.types[id as usize];
        match t.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 => {
                t.size_or_type as usize
            }
            KIND_PTR => 8,
            KIND_ARRAY => {
                let (elem, n) = t.array.unwrap();
                self.size_of(elem) * n as usize
            }
            KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                self.size_of(t.size_or_type)
            }
            k => panic!("type {id} of kind {k} has no size here"),
        }
    }

    /// Each field of the C struct, in its order: (name, byte offset, size).
    fn layout(&self, name: &str) -> (usize, Vec<(String, usize, usize)>) {
        let s = self.struct_named(name);
        let fields = s
            .members
            .iter()
            .map(|m| {
                assert_eq!(
                    m.offset % 8,
                    0,
                    "{name}.{}: a bitfield has no mirror",
                    m.name
                );
                (
                    m.name.clone(),
                    m.offset as usize / 8,
                    self.size_of(m.type_id),
                )
            })
            .collect();
        (s.size_or_type as usize, fields)
    }
}

/// The size of the field a projection names.
fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// The Rust side of one struct: its size and (name, offset, size) per field
/// in declaration order.
macro_rules! rust_layout {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        (
            size_of::<$ty>(),
            vec![$((
                stringify!($field).to_string(),
                offset_of!($ty, $field),
                field_size(|s: &$ty| &s.$field),
            )),*],
        )
    };
}

#[test]
fn rust_mirrors_match_the_objects_btf_field_by_field() {
    let btf = Btf::of_embedded_object();
    let mirrors = [
        ("purple_port_range", rust_layout!(PortRange { first, last })),
        (
            "purple_rule",
            rust_layout!(RuleValue {
                id,
                action,
                protocol,
                nports,
                pad,
                ports
            }),
        ),
        (
            "purple_config",
            rust_layout!(Config {
                mode,
                record_allowed,
                dns_port,
                judge_loopback,
                pad
            }),
        ),
        (
            "purple_asker_key",
            rust_layout!(AskerKey {
                port,
                protocol,
                pad
            }),
        ),
        ("purple_asker", rust_layout!(Asker { pid, comm })),
        (
            "purple_event",
            rust_layout!(RawEvent {
                ts_ns,
                cgroup_id,
                pid,
                rule_id,
                hook,
                family,
                protocol,
                action,
                dport,
                flags,
                daddr,
                comm
            }),
        ),
    ];
    let mut wrong = Vec::new();
    for (c_name, rust) in mirrors {
        let c = btf.layout(c_name);
        if c != rust {
            wrong.push(format!(
                "struct {c_name}\n  C    (size, [(field, offset, size)]): {c:?}\n  Rust (size, [(field, offset, size)]): {rust:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "layouts differ:\n{}", wrong.join("\n"));
}

/// The tries' keys are aya's `lpm_trie::Key<[u8; N]>` (prefix length, then
/// the address), whose fields are private: their sizes are what can be held.
#[test]
fn trie_keys_match_the_objects_btf() {
    use aya::maps::lpm_trie::Key;
    let btf = Btf::of_embedded_object();
    let v4 = btf.layout("purple_key_v4");
    let v6 = btf.layout("purple_key_v6");
    assert_eq!(
        v4.1,
        [("prefixlen".into(), 0, 4), ("addr".into(), 4, 4)],
        "purple_key_v4"
    );
    assert_eq!(
        v6.1,
        [("prefixlen".into(), 0, 4), ("addr".into(), 4, 16)],
        "purple_key_v6"
    );
    assert_eq!(v4.0, size_of::<Key<[u8; 4]>>());
    assert_eq!(v6.0, size_of::<Key<[u8; 16]>>());
}
