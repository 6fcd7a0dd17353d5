//! Where image bytes come from: the one abstraction every reader is written
//! over, in the style of gimli's `Reader` and object's `ReadRef`.
//!
//! A [`Source`] hands out *windows*: the bytes at a position, as many as it
//! has at hand. A byte slice hands out everything from the position on, so
//! the zero-copy reader ([`Image`](crate::Image)) never copies; a flash
//! reader (romfs-embedded's) hands out its one buffer, refilled as needed,
//! so the same parsing code makes the fewest reads a buffer allows.

use core::convert::Infallible;
use core::fmt;

use crate::error::{Error, ErrorKind};

/// Bytes an image is read from.
pub trait Source {
    /// What reading can fail with ([`Infallible`] for memory).
    type Error;

    /// Bytes available: positions `0..len()` can be read.
    fn len(&self) -> usize;

    /// True when no byte can be read.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes from `pos` on: at least one when `pos < len()`, as many as
    /// the source has at hand; empty at or past the end.
    fn window(&mut self, pos: usize) -> Result<&[u8], Self::Error>;

    /// Copy the bytes `pos..pos + out.len()` into `out`. A source that can
    /// read large ranges faster than window by window overrides this.
    fn read_exact_at(&mut self, pos: usize, out: &mut [u8]) -> Result<(), ReadError<Self::Error>> {
        let mut done = 0;
        while done < out.len() {
            let at = pos.saturating_add(done);
            let w = self.window(at).map_err(ReadError::Source)?;
            if w.is_empty() {
                return Err(ReadError::Format(Error::new(
                    ErrorKind::ImagePastEnd {
                        declared: at as u64 + 1,
                        available: self.len() as u64,
                    },
                    at,
                )));
            }
            let n = w.len().min(out.len() - done);
            out[done..done + n].copy_from_slice(&w[..n]);
            done += n;
        }
        Ok(())
    }
}

impl Source for &[u8] {
    type Error = Infallible;

    #[inline]
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    #[inline]
    fn window(&mut self, pos: usize) -> Result<&[u8], Infallible> {
        Ok(self.get(pos..).unwrap_or(&[]))
    }
}

impl<S: Source + ?Sized> Source for &mut S {
    type Error = S::Error;

    fn len(&self) -> usize {
        (**self).len()
    }

    fn window(&mut self, pos: usize) -> Result<&[u8], S::Error> {
        (**self).window(pos)
    }

    fn read_exact_at(&mut self, pos: usize, out: &mut [u8]) -> Result<(), ReadError<S::Error>> {
        (**self).read_exact_at(pos, out)
    }
}

/// The bytes `start..start + len` of another source, seen from 0 (a
/// partition of a device, a slot of a partition).
#[derive(Debug)]
pub struct SubSource<S> {
    inner: S,
    start: usize,
    len: usize,
}

impl<S: Source> SubSource<S> {
    /// `len` bytes of `inner` from `start` (cut short where `inner` ends).
    pub fn new(inner: S, start: usize, len: usize) -> Self {
        let len = len.min(inner.len().saturating_sub(start));
        SubSource { inner, start, len }
    }

    /// The whole source back.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Source> Source for SubSource<S> {
    type Error = S::Error;

    fn len(&self) -> usize {
        self.len
    }

    fn window(&mut self, pos: usize) -> Result<&[u8], S::Error> {
        if pos >= self.len {
            return Ok(&[]);
        }
        let left = self.len - pos;
        let w = self.inner.window(self.start + pos)?;
        Ok(&w[..w.len().min(left)])
    }
}

/// The error of an [`Erased`] source: the real one is kept in the source.
/// Only an [`Erased`] source makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stashed(());

/// Any source behind one error type, so that code reading through
/// `&mut dyn Source<Error = Stashed>` is compiled once for every source (a
/// firmware that reads slots both from mapped memory and through a flash
/// driver carries one copy of the reader, not two). The source's own error
/// is kept aside and given back by [`Erased::restore`].
#[derive(Debug)]
pub struct Erased<'s, S: Source> {
    inner: &'s mut S,
    error: Option<S::Error>,
}

impl<'s, S: Source> Erased<'s, S> {
    /// `inner`, its errors kept aside.
    pub fn new(inner: &'s mut S) -> Self {
        Erased { inner, error: None }
    }

    /// The result of reading through this source, with the kept error put back.
    pub fn restore<T>(
        self,
        result: Result<T, ReadError<Stashed>>,
    ) -> Result<T, ReadError<S::Error>> {
        match (result, self.error) {
            (Ok(v), _) => Ok(v),
            (Err(ReadError::Format(e)), _) => Err(ReadError::Format(e)),
            (Err(ReadError::Source(_)), Some(e)) => Err(ReadError::Source(e)),
            // A stashed error is always set before `Stashed` is returned.
            (Err(ReadError::Source(_)), None) => Err(ReadError::Format(Error::new(
                ErrorKind::ImagePastEnd {
                    declared: 0,
                    available: 0,
                },
                0,
            ))),
        }
    }
}

impl<S: Source> Source for Erased<'_, S> {
    type Error = Stashed;

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn window(&mut self, pos: usize) -> Result<&[u8], Stashed> {
        match self.inner.window(pos) {
            Ok(w) => Ok(w),
            Err(e) => {
                self.error = Some(e);
                Err(Stashed(()))
            }
        }
    }
}

/// Why reading an image from a [`Source`] failed: the image is malformed,
/// or the source itself failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReadError<E> {
    /// The image is malformed (what, and at which offset).
    Format(Error),
    /// The source failed (e.g. a flash read error).
    Source(E),
}

impl<E> From<Error> for ReadError<E> {
    fn from(e: Error) -> Self {
        ReadError::Format(e)
    }
}

impl From<ReadError<Infallible>> for Error {
    fn from(e: ReadError<Infallible>) -> Self {
        match e {
            ReadError::Format(e) => e,
            ReadError::Source(never) => match never {},
        }
    }
}

impl<E: fmt::Debug> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Format(e) => write!(f, "{e}"),
            ReadError::Source(e) => write!(f, "read error: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for ReadError<E> {}

/// True when the bytes at `pos` equal `want` (compared window by window).
pub(crate) fn bytes_equal<S: Source>(
    src: &mut S,
    pos: usize,
    want: &[u8],
) -> Result<bool, ReadError<S::Error>> {
    let mut done = 0;
    while done < want.len() {
        let w = src.window(pos + done).map_err(ReadError::Source)?;
        if w.is_empty() {
            return Ok(false);
        }
        let n = w.len().min(want.len() - done);
        if w[..n] != want[done..done + n] {
            return Ok(false);
        }
        done += n;
    }
    Ok(true)
}

/// Call `visit` with the bytes `start..end` of `src` in order, window by
/// window, until it returns `false`. Returns `false` when stopped early.
pub fn visit<S: Source>(
    src: &mut S,
    start: usize,
    end: usize,
    mut visit: impl FnMut(&[u8]) -> bool,
) -> Result<bool, ReadError<S::Error>> {
    let mut pos = start;
    while pos < end {
        let w = src.window(pos).map_err(ReadError::Source)?;
        if w.is_empty() {
            return Err(ReadError::Format(Error::new(
                ErrorKind::ImagePastEnd {
                    declared: end as u64,
                    available: src.len() as u64,
                },
                pos,
            )));
        }
        let n = w.len().min(end - pos);
        if !visit(&w[..n]) {
            return Ok(false);
        }
        pos += n;
    }
    Ok(true)
}
