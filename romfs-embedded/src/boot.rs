//! Trial boots and rollback for A/B slots.
//!
//! An update committed with [`Updater::trial_boots`](crate::Updater::trial_boots)
//! runs on trial: each boot that mounts it first counts itself by
//! programming one unit of its commit sector ([`boot`]), and once the
//! application knows the new image is healthy it calls [`confirm`]. A trial
//! image that used up its boots without being confirmed is passed over:
//! mounting falls back to the other slot. Neither booting nor confirming
//! erases anything; a power cut during either leaves the image on trial
//! (a torn boot unit counts as a boot used, a torn confirm unit does not
//! confirm).

use embedded_storage::nor_flash::NorFlash;

use crate::buffered::BufferedFlash;
use crate::commit::{read_unit, CommitAreas, Unit, CONFIRM_UNITS};
use crate::slots::{self, AbLayout, SlotInfo, Trial, Verify};
use crate::{Error, LayoutError};

/// The largest write unit the commit sector logs support.
pub const MAX_LOG_UNIT: usize = 256;

/// What [`boot`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Booted {
    /// The slot to mount. Its `trial` counts this boot.
    pub slot: SlotInfo,
    /// A newer slot holds a trial image that used up its boots without
    /// being confirmed: this is the rollback to the slot before it.
    pub rolled_back: bool,
}

fn check_geometry<F: NorFlash>(layout: &AbLayout) -> Result<CommitAreas, Error<F::Error>> {
    let areas = layout.commit_areas();
    if layout.erase_size() as usize != F::ERASE_SIZE
        || layout.write_size() as usize != F::WRITE_SIZE
        || F::WRITE_SIZE > MAX_LOG_UNIT
        || F::READ_SIZE > MAX_LOG_UNIT
    {
        return Err(LayoutError::Geometry.into());
    }
    Ok(areas)
}

/// Both slots' states, read through a small buffer.
fn states<F: NorFlash>(
    flash: &mut F,
    layout: &AbLayout,
    verify: Verify,
) -> Result<[Option<SlotInfo>; 2], Error<F::Error>> {
    let mut device = BufferedFlash::new(flash, [0u8; MAX_LOG_UNIT]);
    Ok([
        slots::slot_state(&mut device, layout, 0, verify)?,
        slots::slot_state(&mut device, layout, 1, verify)?,
    ])
}

/// Program the log unit at `at` to zeros.
fn set_unit<F: NorFlash>(flash: &mut F, at: u32) -> Result<(), Error<F::Error>> {
    let zeros = [0u8; MAX_LOG_UNIT];
    flash
        .write(at, &zeros[..F::WRITE_SIZE])
        .map_err(Error::Flash)
}

/// Choose the slot to run at boot, and count the boot if it is on trial
/// (one write, no erase). Call it once per boot, before mounting
/// [`Booted::slot`] (e.g. with [`slots::mount_slot`] or
/// [`mapped::mount_slot`](crate::mapped::mount_slot)).
pub fn boot<F: NorFlash>(
    flash: &mut F,
    layout: &AbLayout,
    verify: Verify,
) -> Result<Booted, Error<F::Error>> {
    let areas = check_geometry::<F>(layout)?;
    let states = states(flash, layout, verify)?;
    let mut slot = slots::newest(states).ok_or(Error::NoImage)?;
    let rolled_back = states
        .iter()
        .flatten()
        .any(|s| s.generation > slot.generation && s.trial == Trial::Exhausted);
    if let Trial::Pending { used, allowed } = slot.trial {
        let at = layout.commit_offset(slot.index) + areas.boot_unit(used as usize) as u32;
        set_unit(flash, at)?;
        slot.trial = Trial::Pending {
            used: used + 1,
            allowed,
        };
    }
    Ok(Booted { slot, rolled_back })
}

/// Confirm the image that runs (the slot [`boot`] chose): it stays the one
/// mounted from now on. Does nothing when it is not on trial.
/// [`Error::NoImage`] when no slot holds an image; [`Error::Layout`] when
/// power cuts tore every confirm unit (never in practice: there are four).
pub fn confirm<F: NorFlash>(
    flash: &mut F,
    layout: &AbLayout,
    verify: Verify,
) -> Result<SlotInfo, Error<F::Error>> {
    let areas = check_geometry::<F>(layout)?;
    let mut slot = slots::newest(states(flash, layout, verify)?).ok_or(Error::NoImage)?;
    if !matches!(slot.trial, Trial::Pending { .. }) {
        return Ok(slot);
    }
    let commit = layout.commit_offset(slot.index);
    for i in 0..CONFIRM_UNITS {
        let at = commit + areas.confirm_unit(i) as u32;
        let unit = {
            let mut device = BufferedFlash::new(&mut *flash, [0u8; MAX_LOG_UNIT]);
            read_unit(&mut device, at as usize, areas.unit())?
        };
        if unit == Unit::Blank {
            set_unit(flash, at)?;
            slot.trial = Trial::Confirmed;
            return Ok(slot);
        }
    }
    Err(LayoutError::Geometry.into())
}
