//! A check of a plugin library's ELF headers before the loader sees it: the loader maps the
//! segments the program headers name, and touching a page past the end of a truncated file
//! is SIGBUS, so a library whose file does not hold every segment (and the section header
//! table, if it names one) is refused here. A small bounds-checked reader of the ELF header
//! and the program header table; nothing else of the file is read.

use std::io::{Read, Seek, SeekFrom};

/// Why a file is not a library this machine can load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfProblem {
    /// Not an ELF file, or one for another class, byte order, machine or file type.
    Foreign(String),
    /// The headers name bytes the file does not hold.
    Truncated(String),
    /// The file could not be read.
    Io(String),
}

/// Check the ELF headers of `file` (of `len` bytes): an ELF shared object of this machine's
/// class, byte order and architecture, whose program header table, every segment
/// (`p_offset + p_filesz`) and section header table lie inside the file.
pub fn check_elf<F: Read + Seek>(file: &mut F, len: u64) -> Result<(), ElfProblem> {
    let head = read_at(file, 0, len, len.min(64) as usize)?;
    if head.len() < 16 || &head[..4] != b"\x7fELF" {
        return Err(foreign("a file without the ELF magic bytes"));
    }
    let layout = Layout::of(head[4], head[5])?;
    if head.len() < layout.ehsize {
        return Err(truncated(format!(
            "the ELF header needs {} bytes, the file has {len}",
            layout.ehsize
        )));
    }
    let h = Reader {
        bytes: &head,
        big: layout.big,
    };
    let header = layout.header(&h)?;
    header.check_kind()?;
    let ph_bytes = table_bytes(header.phnum, header.phentsize, layout.phsize, "program")?;
    let table = read_at(file, header.phoff, len, ph_bytes)
        .map_err(|e| within(e, "the program header table", header.phoff, ph_bytes, len))?;
    for k in 0..header.phnum {
        let at = k * header.phentsize;
        let ph = Reader {
            bytes: &table[at..at + layout.phsize],
            big: layout.big,
        };
        let (offset, filesz) = layout.segment(&ph)?;
        let end = offset.checked_add(filesz);
        if end.is_none_or(|end| end > len) {
            return Err(truncated(format!(
                "program header {k} names bytes {offset}..{} of the file, which has {len} bytes",
                end.map_or("past 2^64".to_string(), |e| e.to_string())
            )));
        }
    }
    if header.shoff != 0 {
        let sh_bytes = table_bytes(header.shnum.max(1), header.shentsize, 0, "section")?;
        let end = header.shoff.checked_add(sh_bytes as u64);
        if end.is_none_or(|end| end > len) {
            return Err(truncated(format!(
                "the section header table at byte {} ({sh_bytes} bytes) ends past the end of the file, which has {len} bytes",
                header.shoff
            )));
        }
    }
    Ok(())
}

/// The ELF header fields the check needs.
struct Header {
    e_type: u16,
    machine: u16,
    phoff: u64,
    phentsize: usize,
    phnum: usize,
    shoff: u64,
    shentsize: usize,
    shnum: usize,
}

impl Header {
    /// A shared object (`ET_DYN`) for this machine.
    fn check_kind(&self) -> Result<(), ElfProblem> {
        const ET_DYN: u16 = 3;
        if self.e_type != ET_DYN {
            return Err(foreign(format!(
                "ELF file type {}, not a shared object",
                self.e_type
            )));
        }
        match host_machine() {
            Some(m) if m != self.machine => Err(foreign(format!(
                "ELF machine {}, this machine is {} (ELF machine {m})",
                self.machine,
                std::env::consts::ARCH
            ))),
            _ => Ok(()),
        }
    }
}

/// Offsets of the fields of one ELF class.
struct Layout {
    big: bool,
    wide: bool,
    ehsize: usize,
    phsize: usize,
}

impl Layout {
    /// The layout for `EI_CLASS` and `EI_DATA`, if they are this machine's.
    fn of(class: u8, data: u8) -> Result<Layout, ElfProblem> {
        let wide = match class {
            1 => false,
            2 => true,
            c => return Err(foreign(format!("ELF class {c}, neither 32- nor 64-bit"))),
        };
        let big = match data {
            1 => false,
            2 => true,
            d => {
                return Err(foreign(format!(
                    "ELF byte order {d}, neither little- nor big-endian"
                )))
            }
        };
        if wide != cfg!(target_pointer_width = "64") {
            return Err(foreign(format!(
                "a {}-bit ELF file, this machine is {}-bit",
                if wide { 64 } else { 32 },
                usize::BITS
            )));
        }
        if big != cfg!(target_endian = "big") {
            return Err(foreign(format!(
                "a {}-endian ELF file, this machine is {}-endian",
                if big { "big" } else { "little" },
                if big { "little" } else { "big" }
            )));
        }
        let (ehsize, phsize) = if wide { (64, 56) } else { (52, 32) };
        Ok(Layout {
            big,
            wide,
            ehsize,
            phsize,
        })
    }

    fn header(&self, h: &Reader) -> Result<Header, ElfProblem> {
        let (phoff, shoff, rest) = if self.wide {
            (h.u64(32)?, h.u64(40)?, 52)
        } else {
            (u64::from(h.u32(28)?), u64::from(h.u32(32)?), 40)
        };
        Ok(Header {
            e_type: h.u16(16)?,
            machine: h.u16(18)?,
            phoff,
            phentsize: usize::from(h.u16(rest + 2)?),
            phnum: usize::from(h.u16(rest + 4)?),
            shentsize: usize::from(h.u16(rest + 6)?),
            shnum: usize::from(h.u16(rest + 8)?),
            shoff,
        })
    }

    /// `(p_offset, p_filesz)` of one program header.
    fn segment(&self, ph: &Reader) -> Result<(u64, u64), ElfProblem> {
        if self.wide {
            Ok((ph.u64(8)?, ph.u64(32)?))
        } else {
            Ok((u64::from(ph.u32(4)?), u64::from(ph.u32(16)?)))
        }
    }
}

/// Bytes of a header table of `count` entries of `entsize` bytes (at least `min` each).
fn table_bytes(count: usize, entsize: usize, min: usize, what: &str) -> Result<usize, ElfProblem> {
    if count > 0 && entsize < min {
        return Err(foreign(format!(
            "{what} header entries of {entsize} bytes (at least {min} expected)"
        )));
    }
    // Both factors are below 2^16: the product cannot overflow.
    Ok(count * entsize)
}

/// A bounds-checked view of header bytes in the file's byte order.
struct Reader<'a> {
    bytes: &'a [u8],
    big: bool,
}

impl Reader<'_> {
    fn take<const N: usize>(&self, at: usize) -> Result<[u8; N], ElfProblem> {
        self.bytes
            .get(at..at + N)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| truncated(format!("the ELF header ends before byte {}", at + N)))
    }

    fn u16(&self, at: usize) -> Result<u16, ElfProblem> {
        let b = self.take::<2>(at)?;
        Ok(if self.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> Result<u32, ElfProblem> {
        let b = self.take::<4>(at)?;
        Ok(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&self, at: usize) -> Result<u64, ElfProblem> {
        let b = self.take::<8>(at)?;
        Ok(if self.big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }
}

/// `n` bytes of the file from `offset` (fewer only when `offset + n` passes `len`, which the
/// caller reports).
fn read_at<F: Read + Seek>(
    file: &mut F,
    offset: u64,
    len: u64,
    n: usize,
) -> Result<Vec<u8>, ElfProblem> {
    let io = |e: std::io::Error| ElfProblem::Io(crate::input::os_error(&e));
    let end = offset.checked_add(n as u64);
    if end.is_none_or(|end| end > len) {
        return Err(truncated(String::new()));
    }
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = vec![0u8; n];
    file.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// A table that does not fit in the file, in words.
fn within(e: ElfProblem, what: &str, offset: u64, n: usize, len: u64) -> ElfProblem {
    match e {
        ElfProblem::Truncated(_) => truncated(format!(
            "{what} at byte {offset} ({n} bytes) ends past the end of the file, which has {len} bytes"
        )),
        other => other,
    }
}

fn foreign(why: impl Into<String>) -> ElfProblem {
    ElfProblem::Foreign(why.into())
}

fn truncated(why: impl Into<String>) -> ElfProblem {
    ElfProblem::Truncated(why.into())
}

/// The ELF `e_machine` of this build's architecture, where known.
fn host_machine() -> Option<u16> {
    Some(match std::env::consts::ARCH {
        "x86" => 3,
        "x86_64" => 62,
        "arm" => 40,
        "aarch64" => 183,
        "powerpc" => 20,
        "powerpc64" => 21,
        "s390x" => 22,
        "riscv32" | "riscv64" => 243,
        "loongarch64" => 258,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A minimal 64-bit shared object header of this machine with one segment
    /// `(offset, filesz)` and `shoff`.
    fn elf(segment: (u64, u64), shoff: u64, total: usize) -> Vec<u8> {
        let mut b = vec![0u8; total.max(64 + 56)];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = if cfg!(target_endian = "big") { 2 } else { 1 };
        b[6] = 1;
        let put16 = |b: &mut Vec<u8>, at: usize, v: u16| {
            b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
        };
        let put64 = |b: &mut Vec<u8>, at: usize, v: u64| {
            b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        };
        put16(&mut b, 16, 3);
        put16(&mut b, 18, host_machine().unwrap_or(0));
        put64(&mut b, 32, 64);
        put64(&mut b, 40, shoff);
        put16(&mut b, 52, 64);
        put16(&mut b, 54, 56);
        put16(&mut b, 56, 1);
        put16(&mut b, 58, 64);
        put16(&mut b, 60, if shoff == 0 { 0 } else { 2 });
        put64(&mut b, 64 + 8, segment.0);
        put64(&mut b, 64 + 32, segment.1);
        b.truncate(total);
        b
    }

    fn check(bytes: &[u8]) -> Result<(), ElfProblem> {
        check_elf(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn segments_and_tables_inside_the_file_pass() {
        assert_eq!(check(&elf((0, 200), 300, 428)), Ok(()));
        assert_eq!(check(&elf((0, 200), 0, 200)), Ok(()));
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_segment_past_the_end_is_truncated() {
        assert!(matches!(
            check(&elf((0, 201), 0, 200)),
            Err(ElfProblem::Truncated(_))
        ));
        assert!(matches!(
            check(&elf((u64::MAX, 2), 0, 200)),
            Err(ElfProblem::Truncated(_))
        ));
        assert!(matches!(
            check(&elf((0, 100), 300, 427)),
            Err(ElfProblem::Truncated(_))
        ));
        assert!(matches!(
            check(&elf((0, 100), 0, 100)),
            Err(ElfProblem::Truncated(_))
        ));
    }

    #[test]
    fn every_prefix_is_refused_without_a_panic() {
        let full = elf((0, 200), 300, 428);
        for n in 0..full.len() {
            assert!(check(&full[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn text_and_other_classes_are_foreign() {
        assert!(matches!(
            check(b"not a library\n"),
            Err(ElfProblem::Foreign(_))
        ));
        let mut other = elf((0, 200), 0, 200);
        other[4] = if cfg!(target_pointer_width = "64") {
            1
        } else {
            2
        };
        assert!(matches!(check(&other), Err(ElfProblem::Foreign(_))));
        let mut exec = elf((0, 200), 0, 200);
        exec[16..18].copy_from_slice(&2u16.to_ne_bytes());
        assert!(matches!(check(&exec), Err(ElfProblem::Foreign(_))));
    }
}
