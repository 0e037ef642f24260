//! Bounds-checked reading of BGP wire structures (RFC 4271 §4), shared by the MRT and BMP feeds:
//! a [`Cursor`] whose reads fail instead of panicking, iteration over length-framed records and
//! path attributes, and the BGP message header check.
//!
//! Every length is checked before use; malformed input yields [`WireError`], never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Something in the bytes does not add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A field runs past the end of its container.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A field has a value the format does not allow.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// A cursor over a byte slice whose reads fail instead of panicking.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len()
    }

    /// Takes the next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.data.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    /// Reads a byte.
    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    /// Reads a big-endian u16.
    #[inline]
    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian u32.
    #[inline]
    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads an IPv4 (`v6 == false`) or IPv6 address.
    pub fn addr(&mut self, v6: bool, what: &'static str) -> Result<IpAddr, WireError> {
        if v6 {
            let b = self.take(16, what)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Ok(IpAddr::V6(Ipv6Addr::from(a)))
        } else {
            let b = self.take(4, what)?;
            Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
        }
    }

    /// Reads one NLRI prefix (length byte, then the minimum bytes), masked to its length.
    pub fn prefix(&mut self, v6: bool) -> Result<IpNet, WireError> {
        let len = self.u8("prefix length")?;
        let max = if v6 { 128 } else { 32 };
        if len > max {
            return Err(WireError::Invalid("prefix length"));
        }
        let n = (len as usize).div_ceil(8);
        let b = self.take(n, "prefix")?;
        Ok(if v6 {
            let mut a = [0u8; 16];
            a[..n].copy_from_slice(b);
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from(a), len)
                    .map_err(|_| WireError::Invalid("prefix"))?
                    .trunc(),
            )
        } else {
            let mut a = [0u8; 4];
            a[..n].copy_from_slice(b);
            IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(a), len)
                    .map_err(|_| WireError::Invalid("prefix"))?
                    .trunc(),
            )
        })
    }
}

/// BGP message header length (marker, length, type).
pub const BGP_HEADER_LEN: usize = 19;

/// BGP message types (RFC 4271 §4.1).
pub mod message_types {
    /// OPEN.
    pub const OPEN: u8 = 1;
    /// UPDATE.
    pub const UPDATE: u8 = 2;
}

/// Checks a BGP message header (RFC 4271 §4.1) at the start of `data`: returns the message type
/// and the message (header included) as long as its length field says, which must be at least
/// [`BGP_HEADER_LEN`] and at most `data.len()`. Bytes after the message are the caller's. The
/// marker is not checked (bgpkit-parser only warns about a wrong one, and routers' captures are
/// read as they are).
pub fn split_message(data: &[u8]) -> Result<(u8, &[u8]), WireError> {
    let mut c = Cursor::new(data);
    c.take(16, "BGP marker")?;
    let len = c.u16("BGP length")? as usize;
    let ty = c.u8("BGP type")?;
    if len < BGP_HEADER_LEN || len > data.len() {
        return Err(WireError::Invalid("BGP message length"));
    }
    Ok((ty, &data[..len]))
}

/// Path attribute type codes used here.
pub(crate) const ATTR_AS_PATH: u8 = 2;
pub(crate) const ATTR_MP_REACH: u8 = 14;
pub(crate) const ATTR_MP_UNREACH: u8 = 15;
pub(crate) const ATTR_AS4_PATH: u8 = 17;
pub(crate) const ATTR_OTC: u8 = 35;

/// Iterates the records `read` takes off `data` one after another until the data ends; the first
/// error is returned and ends the iteration (the rest cannot be framed).
pub fn records<'a, T>(
    data: &'a [u8],
    mut read: impl FnMut(&mut Cursor<'a>) -> Result<T, WireError> + 'a,
) -> impl Iterator<Item = Result<T, WireError>> + 'a
where
    T: 'a,
{
    let mut c = Cursor::new(data);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || c.remaining() == 0 {
            return None;
        }
        let r = read(&mut c);
        failed = r.is_err();
        Some(r)
    })
}

/// Iterates path attributes: (type code, value).
pub fn attributes(data: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), WireError>> + '_ {
    records(data, |c| {
        let flags = c.u8("attribute flags")?;
        let code = c.u8("attribute type")?;
        let len = if flags & 0x10 != 0 {
            c.u16("attribute length")? as usize
        } else {
            c.u8("attribute length")? as usize
        };
        Ok((code, c.take(len, "attribute value")?))
    })
}
