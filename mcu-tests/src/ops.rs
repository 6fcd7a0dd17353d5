//! Every call into romfs-embedded, in one place: the tests and the size
//! probes both go through these functions, so an API change is adapted
//! here once. Each call runs under a [`Meter`], which the tests use to
//! measure its stack and the size probes leave out.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use romfs_embedded::mapped::{self, MappedFs};
use romfs_embedded::slots;
use romfs_embedded::{
    AbLayout, Checksum, DeltaUpdater, Error, FlashFs, NodeInfo, Partition, Region, Report,
    SlotInfo, UpdateError, Updater, Verify,
};
use zerocopy::{FromBytes, Immutable, KnownLayout};

/// The operations whose stack is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`mapped_mount`].
    MappedMount,
    /// [`mapped_open`].
    MappedOpen,
    /// [`mapped_open_typed`] and [`view`].
    MappedView,
    /// [`flash_mount`].
    FlashMount,
    /// [`flash_lookup`].
    FlashLookup,
    /// [`flash_read`].
    FlashRead,
    /// [`flash_checksum`].
    FlashChecksum,
    /// [`ab_mount_mapped`].
    AbMountMapped,
    /// [`ab_mount_flash`].
    AbMountFlash,
    /// [`begin_ab`].
    BeginAb,
    /// [`begin_single`].
    BeginSingle,
    /// [`write`].
    Write,
    /// [`finish`].
    Finish,
    /// [`delta`].
    Delta,
    /// [`delta_write`].
    DeltaWrite,
    /// [`delta_finish`].
    DeltaFinish,
    /// A whole A/B update as a user writes it ([`crate::user::update`]).
    UserUpdate,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 17] = [
        Op::MappedMount,
        Op::MappedOpen,
        Op::MappedView,
        Op::FlashMount,
        Op::FlashLookup,
        Op::FlashRead,
        Op::FlashChecksum,
        Op::AbMountMapped,
        Op::AbMountFlash,
        Op::BeginAb,
        Op::BeginSingle,
        Op::Write,
        Op::Finish,
        Op::Delta,
        Op::DeltaWrite,
        Op::DeltaFinish,
        Op::UserUpdate,
    ];

    /// The name the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Op::MappedMount => "mapped.mount",
            Op::MappedOpen => "mapped.open",
            Op::MappedView => "mapped.open_typed",
            Op::FlashMount => "flashfs.mount",
            Op::FlashLookup => "flashfs.lookup",
            Op::FlashRead => "flashfs.read_file",
            Op::FlashChecksum => "flashfs.checksum",
            Op::AbMountMapped => "ab.mount_mapped",
            Op::AbMountFlash => "ab.mount_flash",
            Op::BeginAb => "update.begin_ab",
            Op::BeginSingle => "update.begin_single",
            Op::Write => "update.write",
            Op::Finish => "update.finish",
            Op::Delta => "delta.start",
            Op::DeltaWrite => "delta.write",
            Op::DeltaFinish => "delta.finish",
            Op::UserUpdate => "user.update",
        }
    }
}

/// Runs each operation (and may measure it).
pub trait Meter {
    /// Run `f`, which is the operation `op`.
    fn run<R>(&mut self, op: Op, f: impl FnOnce() -> R) -> R;
}

/// Runs operations as they are (the size probes).
#[derive(Debug, Default)]
pub struct Unmetered;

impl Meter for Unmetered {
    #[inline(always)]
    fn run<R>(&mut self, _op: Op, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Mount the image at the start of memory-mapped `region`.
pub fn mapped_mount<'a>(m: &mut impl Meter, region: &'a [u8]) -> Result<MappedFs<'a>, Error> {
    m.run(Op::MappedMount, || MappedFs::mount(region))
}

/// A file of a mapped image, as a slice of flash.
pub fn mapped_open<'a>(
    m: &mut impl Meter,
    fs: &MappedFs<'a>,
    path: &[u8],
) -> Result<&'a [u8], Error> {
    m.run(Op::MappedOpen, || fs.open(path))
}

/// A file of a mapped image viewed in place as `[T]`.
pub fn mapped_open_typed<'a, T: FromBytes + Immutable + KnownLayout>(
    m: &mut impl Meter,
    fs: &MappedFs<'a>,
    path: &[u8],
) -> Result<&'a [T], Error> {
    m.run(Op::MappedView, || fs.open_typed::<T>(path))
}

/// Bytes viewed in place as `[T]`.
pub fn view<'a, T: FromBytes + Immutable + KnownLayout>(
    m: &mut impl Meter,
    data: &'a [u8],
) -> Result<&'a [T], Error> {
    m.run(Op::MappedView, || mapped::view::<T>(data))
}

/// Mount the image at the start of (non-mapped) `flash`, read through an
/// `N`-byte buffer.
pub fn flash_mount<F: ReadNorFlash, const N: usize>(
    m: &mut impl Meter,
    flash: F,
) -> Result<FlashFs<F, N>, Error<F::Error>> {
    m.run(Op::FlashMount, || FlashFs::mount(flash))
}

/// Look a path up in a non-mapped image.
pub fn flash_lookup<F: ReadNorFlash, const N: usize>(
    m: &mut impl Meter,
    fs: &mut FlashFs<F, N>,
    path: &[u8],
) -> Result<Option<NodeInfo>, Error<F::Error>> {
    m.run(Op::FlashLookup, || fs.lookup(path))
}

/// Read a file of a non-mapped image from `offset` into `out`.
pub fn flash_read<F: ReadNorFlash, const N: usize>(
    m: &mut impl Meter,
    fs: &mut FlashFs<F, N>,
    file: &NodeInfo,
    offset: usize,
    out: &mut [u8],
) -> Result<usize, Error<F::Error>> {
    m.run(Op::FlashRead, || fs.read_file(file, offset, out))
}

/// The non-mapped image's own checksum.
pub fn flash_checksum<F: ReadNorFlash, const N: usize>(
    m: &mut impl Meter,
    fs: &mut FlashFs<F, N>,
) -> Result<Checksum, Error<F::Error>> {
    m.run(Op::FlashChecksum, || fs.checksum())
}

/// Mount the newest valid slot of `layout` in mapped `device`.
pub fn ab_mount_mapped<'a>(
    m: &mut impl Meter,
    device: &'a [u8],
    layout: &AbLayout,
) -> Result<(SlotInfo, MappedFs<'a>), Error> {
    m.run(Op::AbMountMapped, || {
        mapped::mount_ab(device, layout, Verify::Full)
    })
}

/// Mount the newest valid slot of `layout` in (non-mapped) `flash`.
#[allow(clippy::type_complexity)]
pub fn ab_mount_flash<F: ReadNorFlash, const N: usize>(
    m: &mut impl Meter,
    flash: F,
    layout: &AbLayout,
) -> Result<(SlotInfo, FlashFs<Partition<F>, N>), Error<F::Error>> {
    m.run(Op::AbMountFlash, || {
        slots::mount_ab::<F, N>(flash, layout, Verify::Full)
    })
}

/// Start an A/B update of `flash` (the slot not mounted is written).
pub fn begin_ab<'b, F: NorFlash>(
    m: &mut impl Meter,
    flash: F,
    layout: AbLayout,
    buf: &'b mut [u8],
) -> Result<Updater<'b, F>, UpdateError<F::Error>> {
    m.run(Op::BeginAb, || {
        Updater::begin_ab(flash, layout, Verify::Full, buf)
    })
}

/// Start a single-slot update of the image at the start of `region`,
/// refusing images whose header is not safe for the flash's write size.
pub fn begin_single<'b, F: NorFlash>(
    m: &mut impl Meter,
    flash: F,
    region: Region,
    buf: &'b mut [u8],
) -> Result<Updater<'b, F>, UpdateError<F::Error>> {
    m.run(Op::BeginSingle, || {
        Updater::begin_single(flash, region, buf).map(Updater::require_header_safe)
    })
}

/// Feed the next chunk of the image.
pub fn write<F: NorFlash>(
    m: &mut impl Meter,
    up: &mut Updater<'_, F>,
    chunk: &[u8],
) -> Result<(), UpdateError<F::Error>> {
    m.run(Op::Write, || up.write(chunk))
}

/// Check (against the image identity the sender meant, if given), write
/// the rest, verify and commit.
pub fn finish<F: NorFlash>(
    m: &mut impl Meter,
    up: Updater<'_, F>,
    expected_id: Option<u32>,
) -> Result<Report, UpdateError<F::Error>> {
    m.run(Op::Finish, || up.finish(expected_id))
}

/// Turn a fresh A/B update ([`begin_ab`]) into a delta update: the patch
/// is applied to the image of the running slot and the result written to
/// the other one.
pub fn delta<'u, 'b, F: NorFlash>(
    m: &mut impl Meter,
    up: &'u mut Updater<'b, F>,
) -> Result<DeltaUpdater<'u, 'b, F>, UpdateError<F::Error>> {
    m.run(Op::Delta, || up.delta())
}

/// Feed the next chunk of the patch.
pub fn delta_write<F: NorFlash>(
    m: &mut impl Meter,
    up: &mut DeltaUpdater<'_, '_, F>,
    chunk: &[u8],
) -> Result<(), UpdateError<F::Error>> {
    m.run(Op::DeltaWrite, || up.write(chunk))
}

/// Check the result against the patch (and the identity the sender
/// meant, if given), write the rest, verify and commit.
pub fn delta_finish<F: NorFlash>(
    m: &mut impl Meter,
    up: DeltaUpdater<'_, '_, F>,
    expected_id: Option<u32>,
) -> Result<Report, UpdateError<F::Error>> {
    m.run(Op::DeltaFinish, || up.finish(expected_id))
}
