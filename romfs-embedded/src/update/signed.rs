//! Signed updates (feature `signed`): the image must carry a manifest
//! signed by a key the firmware trusts, for this product and newer than
//! what runs (FORMAT.md, section 3.4).
//!
//! The updater hashes the image while it streams (SHA-256, no second pass
//! over flash) and checks the manifest before it commits. A sender can hand
//! the signed manifest over first ([`Updater::with_manifest`]): a forged,
//! replayed or wrong-product update is then refused before anything is
//! erased, and an A/B update keeps a progress log from which
//! [`Updater::resume`] continues after a power cut.

use embedded_storage::nor_flash::{ErrorType, NorFlash};
use romfs_format::ext::EXTENSION_PREFIX_LEN;
use romfs_format::signature::{
    Manifest, SignedManifest, KEY_ID_LEN, MAX_PRODUCT_LEN, SIGNATURE_PAYLOAD_LEN,
    SIGNED_MANIFEST_LEN,
};
use romfs_format::source::SubSource;
use romfs_format::{Reader, Source};

/// SHA-256 (hmac-sha256, built for size).
type Sha256 = hmac_sha256::Hash;

use super::{Target, UpdateError, Updater, SCRATCH};
use crate::buffered::BufferedFlash;
use crate::commit::{read_unit, Unit, RESUME_BEGIN_LEN, RESUME_MAGIC};

/// The key id of an Ed25519 public key: the first bytes of its SHA-256, as
/// manifests carry it.
pub fn key_id(public_key: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::hash(public_key);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// Whether `signature` is a valid Ed25519 signature (RFC 8032) of `message`
/// by `public_key`, under the strict rules of ed25519-dalek's
/// `verify_strict`: a non-canonical S (not below the group order), a public
/// key or an R of small order, and (stricter than dalek) a non-canonical
/// encoding of either point are refused. One difference, which only the key
/// holder can bring about: an R off by a small-order point from the one the
/// signer's nonce gives is accepted (the check is cofactored), where dalek
/// refuses it. The arithmetic is ed25519-compact's.
#[inline(never)]
pub fn verify_signature(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    // ed25519-compact's `verify` in its three steps, each in a frame of its
    // own: inlined into one, the point decoding's temporaries and the
    // double scalar multiplication's tables are on the stack together.
    let mut state = begin_verification(public_key, signature);
    match state.as_mut() {
        Some(state) => {
            absorb_message(state, message);
            end_verification(state)
        }
        None => false,
    }
}

/// Decode the key and R, refuse a non-canonical S or a small-order point.
#[inline(never)]
fn begin_verification(
    public_key: &[u8; 32],
    signature: &[u8; 64],
) -> Option<ed25519_compact::VerifyingState> {
    let key = ed25519_compact::PublicKey::new(*public_key);
    key.verify_incremental(&ed25519_compact::Signature::new(*signature))
        .ok()
}

#[inline(never)]
fn absorb_message(state: &mut ed25519_compact::VerifyingState, message: &[u8]) {
    state.absorb(message);
}

/// The group equation.
#[inline(never)]
fn end_verification(state: &ed25519_compact::VerifyingState) -> bool {
    state.verify().is_ok()
}

/// What a device accepts: images signed with this key, for this product,
/// and at least this generation (and always newer than the one that runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustPolicy {
    public_key: [u8; 32],
    key_id: [u8; KEY_ID_LEN],
    product: [u8; MAX_PRODUCT_LEN],
    min_generation: u32,
}

impl TrustPolicy {
    /// Trust `public_key` (the 32 bytes of an Ed25519 public key, compiled
    /// into the firmware) for `product`; refuse generations below
    /// `min_generation` (e.g. kept in OTP). `None` when `product` is longer
    /// than [`MAX_PRODUCT_LEN`] or holds a NUL.
    pub fn new(public_key: [u8; 32], product: &[u8], min_generation: u32) -> Option<Self> {
        Some(TrustPolicy {
            public_key,
            key_id: key_id(&public_key),
            product: Manifest::product_field(product)?,
            min_generation,
        })
    }

    /// The trusted key's id.
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        self.key_id
    }

    /// Check a signed manifest: the key, the signature, then (only once they
    /// are authentic) the product and the generation against `installed`
    /// (the signed generation that runs, if any).
    #[inline(never)]
    pub fn check<E>(
        &self,
        signed: &SignedManifest,
        installed: Option<u32>,
    ) -> Result<(), UpdateError<E>> {
        let m = &signed.manifest;
        if m.key_id != self.key_id {
            return Err(UpdateError::WrongKey { key_id: m.key_id });
        }
        if !verify_signature(&self.public_key, &signed.message, &signed.signature) {
            return Err(UpdateError::BadSignature);
        }
        if m.product != self.product {
            return Err(UpdateError::WrongProduct);
        }
        if m.generation < self.min_generation {
            return Err(UpdateError::BelowMinimum {
                generation: m.generation,
                minimum: self.min_generation,
            });
        }
        if let Some(installed) = installed.filter(|&i| m.generation <= i) {
            return Err(UpdateError::Rollback {
                generation: m.generation,
                installed,
            });
        }
        Ok(())
    }
}

/// The steps a signed update adds to an update, reached only through
/// [`Updater::require_signature`].
pub(super) struct SignedSteps<'b, F: ErrorType> {
    /// Before the first sector is written: open the progress log.
    pub(super) open_progress: Step<'b, F, ()>,
    /// Before the commit: check the signature record (the image length).
    pub(super) check_signature: Step<'b, F, u32>,
}

/// A step of a signed update, with its argument.
type Step<'b, F, A> =
    fn(&mut Updater<'b, F>, A) -> Result<(), UpdateError<<F as ErrorType>::Error>>;

impl<F: ErrorType> Clone for SignedSteps<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: ErrorType> Copy for SignedSteps<'_, F> {}

impl<F: ErrorType> core::fmt::Debug for SignedSteps<'_, F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SignedSteps")
    }
}

/// The running state of a signed update.
#[derive(Clone)]
pub(super) struct SignedStream {
    /// Hash a piece of the stream (and keep the state at a boundary).
    pub(super) hash: fn(&mut SignedStream, &[u8], bool),
    policy: TrustPolicy,
    /// The signed generation of the image that runs.
    installed: Option<u32>,
    /// The manifest sent ahead of the image, already checked.
    sent: Option<Sent>,
    /// The manifest found valid at the end.
    verified: Option<Manifest>,
    sha: Sha256,
    /// SHA-256 state at the last top-level record boundary, and at the one before.
    at_boundary: Sha256,
    at_previous_boundary: Sha256,
    progress: Option<Progress>,
}

impl core::fmt::Debug for SignedStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SignedStream")
            .field("policy", &self.policy)
            .field("sent", &self.sent.is_some())
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// What is kept of a manifest sent ahead (its SHA-256 rather than its
/// bytes: the updater is moved by value, and its size is stack).
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// SHA-256 of the signed manifest's bytes.
    digest: [u8; 32],
    /// The image length it declares.
    image_len: u32,
}

/// The progress log of an A/B update whose manifest was sent ahead: one
/// unit per `group` sectors, programmed in order. A unit torn by a power cut
/// stands for nothing and is skipped, so the groups done are the set units
/// before the first blank one.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Sectors each set unit stands for.
    group: u32,
    /// The next unit to program (the first blank one).
    next_unit: u32,
    /// Units in the commit sector.
    units: u32,
    /// The commit sector was erased and the log opened.
    opened: bool,
}

impl SignedStream {
    fn hash(&mut self, piece: &[u8], boundary: bool) {
        self.sha.update(piece);
        if boundary {
            self.at_previous_boundary = core::mem::replace(&mut self.at_boundary, self.sha);
        }
    }
}

impl<'b, F: NorFlash> Updater<'b, F> {
    /// Require a signed image: the update fails (before it commits, and
    /// leaving the running image) unless the image ends with a manifest
    /// signed by `policy`'s key, for its product, not below its minimum
    /// generation and newer than the signed image that runs. Call it before
    /// the first [`write`](Self::write).
    pub fn require_signature(mut self, policy: TrustPolicy) -> Result<Self, UpdateError<F::Error>> {
        self.require_signature_checked(policy)?;
        Ok(self)
    }

    /// [`require_signature`](Self::require_signature) for an updater in a
    /// place of the caller's ([`begin_ab_in`](Self::begin_ab_in)): no copy
    /// of it is made. An error ends the update (later calls return
    /// [`UpdateError::Aborted`]).
    pub fn require_signature_in_place(
        &mut self,
        policy: TrustPolicy,
    ) -> Result<(), UpdateError<F::Error>> {
        self.ended_on_error(|up| up.require_signature_checked(policy))
    }

    fn require_signature_checked(
        &mut self,
        policy: TrustPolicy,
    ) -> Result<(), UpdateError<F::Error>> {
        if self.received.position() > 0 {
            return Err(UpdateError::Aborted);
        }
        let installed = match self.target {
            Target::Ab { .. } => self
                .installed
                .filter(|slot| slot.signed)
                .map(|slot| slot.image_generation),
            Target::Single => self.running_generation()?,
        };
        self.start_signed_stream(policy, installed);
        Ok(())
    }

    /// The state of a signed stream, built in this frame rather than in the
    /// one that holds the updater by value.
    #[inline(never)]
    fn start_signed_stream(&mut self, policy: TrustPolicy, installed: Option<u32>) {
        let sha = Sha256::new();
        self.signed_steps = Some(SignedSteps {
            open_progress: |up, ()| up.open_progress(),
            check_signature: Self::check_signature,
        });
        self.received.signed = Some(SignedStream {
            hash: SignedStream::hash,
            policy,
            installed,
            sent: None,
            verified: None,
            at_boundary: sha,
            at_previous_boundary: sha,
            sha,
            progress: None,
        });
    }

    /// Single slot: the signed generation of the image in the region now.
    fn running_generation(&mut self) -> Result<Option<u32>, UpdateError<F::Error>> {
        let region = self.region;
        let mut scratch = [0u8; SCRATCH];
        let mut device = BufferedFlash::new(&mut self.flash, &mut scratch[..]);
        let part = SubSource::new(&mut device, region.offset as usize, region.len as usize);
        let generation = match Reader::new(part) {
            Ok(mut image) => match image.signature_record() {
                Ok(Some(rec)) if rec.len == SIGNATURE_PAYLOAD_LEN => {
                    let mut body = [0u8; SIGNED_MANIFEST_LEN];
                    let at = rec.payload_offset + EXTENSION_PREFIX_LEN;
                    image.source().read_exact_at(at, &mut body)?;
                    SignedManifest::parse(&body)
                        .ok()
                        .map(|m| m.manifest.generation)
                }
                _ => None,
            },
            Err(romfs_format::ReadError::Source(e)) => return Err(UpdateError::Flash(e)),
            Err(_) => None,
        };
        self.reads += device.stats();
        Ok(generation)
    }

    /// Check the signed manifest of the image to come (the 160 bytes of its
    /// signature record's body, as `romfs info` shows them) before anything
    /// is written: a forged, replayed or wrong-product update is refused
    /// here, before a single erase. The image that follows must then carry
    /// exactly this manifest. Needs [`require_signature`](Self::require_signature).
    /// An A/B update also keeps a progress log from here on, so that
    /// [`resume`](Self::resume) can continue it after a power cut.
    pub fn with_manifest(mut self, signed_manifest: &[u8]) -> Result<Self, UpdateError<F::Error>> {
        self.accept_manifest(signed_manifest)?;
        Ok(self)
    }

    /// [`with_manifest`](Self::with_manifest) for an updater in a place of
    /// the caller's ([`begin_ab_in`](Self::begin_ab_in)): no copy of it is
    /// made, so the signature check runs with less stack below it. A
    /// refused manifest ends the update (later calls return
    /// [`UpdateError::Aborted`]).
    pub fn with_manifest_in_place(
        &mut self,
        signed_manifest: &[u8],
    ) -> Result<(), UpdateError<F::Error>> {
        self.ended_on_error(|up| up.accept_manifest(signed_manifest))
    }

    /// [`with_manifest`](Self::with_manifest) in place: its own frame, not
    /// the one that holds the updater by value, is where the signature
    /// check runs.
    #[inline(never)]
    fn accept_manifest(&mut self, signed_manifest: &[u8]) -> Result<(), UpdateError<F::Error>> {
        let manifest = SignedManifest::parse(signed_manifest).map_err(UpdateError::BadManifest)?;
        let target = self.target;
        let e = F::ERASE_SIZE as u32;
        let signed = self.received.signed.as_mut().ok_or(UpdateError::Unsigned)?;
        signed.policy.check(&manifest, signed.installed)?;
        let m = manifest.manifest;
        if u64::from(m.image_len) > u64::from(self.region.len) {
            return Err(UpdateError::TooLarge {
                image_len: m.image_len.into(),
                capacity: self.region.len,
            });
        }
        signed.sent = Some(Sent {
            digest: Sha256::hash(&manifest.to_bytes()),
            image_len: manifest.manifest.image_len,
        });
        if let Target::Ab { layout, .. } = target {
            let areas = layout.commit_areas();
            let units = areas.progress_units() as u32;
            if units > 0 && F::WRITE_SIZE <= crate::boot::MAX_LOG_UNIT {
                let sectors = m.image_len / e;
                // Leave a few units for torn programs to be skipped.
                let usable = units.saturating_sub(4).max(1);
                signed.progress = Some(Progress {
                    group: sectors.div_ceil(usable).max(1),
                    next_unit: 0,
                    units,
                    opened: false,
                });
            }
        }
        Ok(())
    }

    /// The opening record of this update's progress log.
    fn progress_begin(&self) -> Option<[u8; RESUME_BEGIN_LEN]> {
        let sent = self.received.signed.as_ref()?.sent?;
        let mut rec = [0u8; RESUME_BEGIN_LEN];
        rec[..4].copy_from_slice(&RESUME_MAGIC);
        rec[4..8].copy_from_slice(&sent.image_len.to_le_bytes());
        rec[8..].copy_from_slice(&sent.digest);
        Some(rec)
    }

    /// A/B, after [`with_manifest`](Self::with_manifest) and before the first
    /// write: if an earlier attempt at this very update (same manifest) was
    /// cut short, take up where it stopped. Returns the offset in the image
    /// from which to send the rest (0: from the start). What is already in
    /// flash is hashed again and checked, with the rest, against the
    /// manifest's digest before the update commits.
    pub fn resume(&mut self) -> Result<u32, UpdateError<F::Error>> {
        let Target::Ab { layout, index, .. } = self.target else {
            return Ok(0);
        };
        let (Some(begin), Some(progress)) = (
            self.progress_begin(),
            self.received.signed.as_ref().and_then(|s| s.progress),
        ) else {
            return Ok(0);
        };
        if self.received.position() > 0 {
            return Err(UpdateError::Aborted);
        }
        let areas = layout.commit_areas();
        let commit = layout.commit_offset(index) as usize;
        let mut scratch = [0u8; SCRATCH];
        let mut device = BufferedFlash::new(&mut self.flash, &mut scratch[..]);
        let mut found = [0u8; RESUME_BEGIN_LEN];
        device.read_exact_at(commit + areas.resume_begin(), &mut found)?;
        let image_sectors = begin_image_len(&begin) / F::ERASE_SIZE as u32;
        let (mut groups, mut next) = (0, 0);
        if found == begin {
            while next < progress.units {
                let at = commit + areas.progress_unit(next as usize);
                match read_unit(&mut device, at, areas.unit())? {
                    Unit::Blank => break,
                    Unit::Set => groups += 1,
                    Unit::Torn => {}
                }
                next += 1;
            }
        }
        self.reads += device.stats();
        if found != begin {
            return Ok(0);
        }
        if let Some(p) = self.progress_mut() {
            p.opened = true;
            p.next_unit = next;
        }
        self.invalidated = true;
        for sector in 0..(groups * progress.group).min(image_sectors) {
            self.replay_sector(sector)?;
        }
        Ok(self.received.position())
    }

    /// Before writing into sector `sector`'s slot: open the progress log
    /// (erase the target's commit sector, write the opening record).
    fn open_progress(&mut self) -> Result<(), UpdateError<F::Error>> {
        let Target::Ab { layout, index, .. } = self.target else {
            return Ok(());
        };
        let Some(begin) = self.progress_begin() else {
            return Ok(());
        };
        match self.received.signed.as_ref().and_then(|s| s.progress) {
            Some(p) if !p.opened => {}
            _ => return Ok(()),
        }
        let areas = layout.commit_areas();
        let commit = layout.commit_offset(index);
        if !self.all_erased(commit, F::ERASE_SIZE)? {
            self.erase(commit)?;
        }
        let len = areas.resume_begin_len();
        let mut unit = [0xffu8; crate::boot::MAX_LOG_UNIT + RESUME_BEGIN_LEN];
        unit[..RESUME_BEGIN_LEN].copy_from_slice(&begin);
        self.write_bytes(commit + areas.resume_begin() as u32, &unit[..len])?;
        self.invalidated = true;
        if let Some(p) = self.progress_mut() {
            p.opened = true;
        }
        Ok(())
    }

    fn progress_mut(&mut self) -> Option<&mut Progress> {
        self.received.signed.as_mut()?.progress.as_mut()
    }

    /// Sector `sector` of the image is in flash: log it.
    pub(super) fn log_progress(&mut self, sector: u32) -> Result<(), UpdateError<F::Error>> {
        let Target::Ab { layout, index, .. } = self.target else {
            return Ok(());
        };
        let Some(p) = self.progress_mut() else {
            return Ok(());
        };
        if !p.opened || !(sector + 1).is_multiple_of(p.group) || p.next_unit >= p.units {
            return Ok(());
        }
        let unit = p.next_unit;
        p.next_unit += 1;
        let areas = layout.commit_areas();
        let at = layout.commit_offset(index) + areas.progress_unit(unit as usize) as u32;
        let zeros = [0u8; crate::boot::MAX_LOG_UNIT];
        self.write_bytes(at, &zeros[..F::WRITE_SIZE])
    }

    /// Check the signature record that ended the stream: the manifest (the
    /// one sent ahead, or checked against the policy now), its extent, and
    /// the digest of everything before it.
    #[inline(never)]
    fn check_signature(&mut self, total: u32) -> Result<(), UpdateError<F::Error>> {
        let Some(signed) = self.received.signed.as_ref() else {
            return Ok(());
        };
        let (sent, policy, installed) = (signed.sent, signed.policy, signed.installed);
        let digest: [u8; 32] = signed.at_previous_boundary.finalize();
        let rec = self
            .received
            .scanner
            .signature_record()
            .ok_or(UpdateError::Unsigned)?;
        if rec.header.len != SIGNATURE_PAYLOAD_LEN {
            return Err(UpdateError::BadManifest(
                romfs_format::signature::ManifestError::Length {
                    len: rec.header.len.saturating_sub(EXTENSION_PREFIX_LEN),
                },
            ));
        }
        let mut body = [0u8; SIGNED_MANIFEST_LEN];
        self.read_image(rec.header.payload_offset + EXTENSION_PREFIX_LEN, &mut body)?;
        let manifest = SignedManifest::parse(&body).map_err(UpdateError::BadManifest)?;
        match sent {
            Some(sent) if Sha256::hash(&body) != sent.digest => {
                return Err(UpdateError::ManifestMismatch)
            }
            Some(_) => {}
            None => policy.check(&manifest, installed)?,
        }
        let m = manifest.manifest;
        if m.image_len != total || m.signed_len as usize != rec.header.offset || m.digest != digest
        {
            return Err(UpdateError::ManifestMismatch);
        }
        if let Some(signed) = self.received.signed.as_mut() {
            signed.verified = Some(m);
        }
        Ok(())
    }

    /// With a signed stream, the header must declare the manifest's length.
    pub(super) fn check_declared_len(&self, image_len: u64) -> Result<(), UpdateError<F::Error>> {
        match self.received.signed.as_ref().and_then(|s| s.sent) {
            Some(sent) if u64::from(sent.image_len) != image_len => {
                Err(UpdateError::ManifestMismatch)
            }
            _ => Ok(()),
        }
    }

    /// The manifest the update was verified against, once it was.
    pub(super) fn verified_manifest(&self) -> Option<Manifest> {
        self.received.signed.as_ref()?.verified
    }
}

fn begin_image_len(begin: &[u8; RESUME_BEGIN_LEN]) -> u32 {
    u32::from_le_bytes([begin[4], begin[5], begin[6], begin[7]])
}
