//! Signed updates, trial boots, rollback and resumed updates: the attacks
//! they must refuse, and power cuts at every erase and write of each path.

mod common;
#[path = "signed/ed25519.rs"]
mod ed25519;

use common::ab::{layout, Flash, Result, E, SLOT};
use common::{app_files, build, partials, Rng};
use ed25519_dalek::{Signer, SigningKey};
use romfs_embedded::boot::{self, Booted};
use romfs_embedded::mapped;
use romfs_embedded::sim::{Partial, SimError, SimStats};
use romfs_embedded::slots::{self, Trial, Verify};
use romfs_embedded::update::{TrustPolicy, UpdateError, Updater};
use romfs_format::signature::{self, ManifestError, SIGNED_MANIFEST_LEN};
use romfs_format::write::{MetadataSpec, Options, SignatureSpec};
use sha2::{Digest, Sha256};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The key `key(seed)` signs with, and the policy of a device that trusts it
/// for `product` from `min_generation` on.
fn key_and_policy(seed: u8, product: &str, min_generation: u32) -> (SigningKey, TrustPolicy) {
    let k = key(seed);
    let policy = TrustPolicy::new(
        k.verifying_key().to_bytes(),
        product.as_bytes(),
        min_generation,
    )
    .unwrap();
    (k, policy)
}

/// An app image (`VERSION = version` in config.py) signed by `key` for
/// `product` at `generation`, as `romfs build --sign` makes it.
fn signed_image(
    version: u32,
    kib: usize,
    key: &SigningKey,
    product: &str,
    generation: u32,
) -> Vec<u8> {
    let mut image = build(
        &app_files(version as u64, kib, version),
        version as u64,
        Some(Options {
            metadata: Some(MetadataSpec {
                generation: Some(u64::from(generation)),
                ..MetadataSpec::default()
            }),
            signature: Some(SignatureSpec {
                product: product.into(),
                generation,
            }),
            ..Options::default()
        }),
    );
    seal(&mut image, key);
    image
}

/// Fill in the digest, key id and signature of a signed image.
fn seal(image: &mut [u8], key: &SigningKey) {
    let signed_len = signature::signed_len(image).unwrap();
    let digest: [u8; 32] = Sha256::digest(&image[..signed_len]).into();
    let key_id = romfs_embedded::update::key_id(&key.verifying_key().to_bytes());
    signature::seal(image, digest, key_id, |m| key.sign(m).to_bytes()).unwrap();
}

/// The signed manifest a sender hands over first.
fn manifest_of(image: &[u8]) -> [u8; SIGNED_MANIFEST_LEN] {
    image[image.len() - SIGNED_MANIFEST_LEN..]
        .try_into()
        .unwrap()
}

/// `up` made to require a signature per `policy`, with the manifest sent
/// ahead if there is one.
fn signed<'b, 'f>(
    up: Updater<'b, &'f mut Flash>,
    policy: TrustPolicy,
    manifest: Option<&[u8]>,
) -> Result<Updater<'b, &'f mut Flash>> {
    let mut up = up.require_signature(policy)?;
    if let Some(m) = manifest {
        up = up.with_manifest(m)?;
    }
    Ok(up)
}

/// How a test drives the updater: by value (each step returns it), or in
/// one place of the caller's (the `_in_place` forms, as the README shows).
#[derive(Debug, Clone, Copy)]
enum Form {
    ByValue,
    InPlace,
}

impl Form {
    /// A/B update of `image`, signed per `policy`, optionally with the manifest
    /// sent ahead, driven in this form.
    fn update(
        self,
        flash: &mut Flash,
        image: &[u8],
        policy: TrustPolicy,
        manifest: Option<&[u8]>,
        trial_boots: u8,
        chunk: usize,
    ) -> Result<romfs_embedded::Report> {
        let mut buf = vec![0u8; E];
        let flash = &mut *flash;
        match self {
            Form::ByValue => {
                let up = Updater::begin_ab(flash, layout(), Verify::CommitOnly, &mut buf)?
                    .trial_boots(trial_boots)?;
                let mut up = signed(up, policy, manifest)?;
                image.chunks(chunk).try_for_each(|c| up.write(c))?;
                up.finish(None)
            }
            Form::InPlace => {
                let mut place = None;
                let up = Updater::begin_ab_in(
                    &mut place,
                    flash,
                    layout(),
                    Verify::CommitOnly,
                    &mut buf,
                )?;
                let result = (|| {
                    up.trial_boots_in_place(trial_boots)?;
                    up.require_signature_in_place(policy)?;
                    if let Some(m) = manifest {
                        up.with_manifest_in_place(m)?;
                    }
                    image.chunks(chunk).try_for_each(|c| up.write(c))?;
                    up.finish_in_place(None)
                })();
                if result.is_err() {
                    // An error ended the update: the updater refuses to go on.
                    assert!(matches!(up.write(&image[..1]), Err(UpdateError::Aborted)));
                    assert!(matches!(
                        up.finish_in_place(None),
                        Err(UpdateError::Aborted)
                    ));
                }
                result
            }
        }
    }
}

/// A/B flash with `image` installed, signed per `policy`.
fn installed(image: &[u8], policy: TrustPolicy) -> Flash {
    let mut flash = Flash::new(2 * SLOT as usize);
    Form::ByValue
        .update(&mut flash, image, policy, None, 0, 4096)
        .unwrap();
    flash
}

/// The image mounted from flash alone, without counting a boot.
fn active(flash: &Flash) -> Option<Vec<u8>> {
    common::mounted_ab(flash.contents(), &layout())
}

fn writes_and_erases(s: SimStats) -> (u64, u64) {
    (s.writes, s.erases)
}

/// `image` with the last byte of its signature flipped.
fn forged(mut image: Vec<u8>) -> Vec<u8> {
    let n = image.len();
    image[n - 1] ^= 1;
    image
}

/// What a refused image must be refused with.
type Expect = fn(&UpdateError<SimError>) -> bool;

/// The images signed for `board-a` that a device running its generation
/// `installed` refuses, sent whole or as a patch, named, with what refuses
/// each: one signed by another key, one for another product, one at the
/// installed generation (app version `same`), and a forged one; the others
/// are app version `next` at generation `next`.
fn refused_everywhere(
    k: &SigningKey,
    next: u32,
    same: u32,
    installed: u32,
) -> Vec<(&'static str, Vec<u8>, Expect)> {
    vec![
        (
            "another key",
            signed_image(next, 20, &key(2), "board-a", next),
            |e| matches!(e, UpdateError::WrongKey { .. }),
        ),
        (
            "another product",
            signed_image(next, 20, k, "board-b", next),
            |e| matches!(e, UpdateError::WrongProduct),
        ),
        (
            "the same generation",
            signed_image(same, 20, k, "board-a", installed),
            |e| matches!(e, UpdateError::Rollback { .. }),
        ),
        (
            "a forged signature",
            forged(signed_image(next, 20, k, "board-a", next)),
            |e| matches!(e, UpdateError::BadSignature),
        ),
    ]
}

#[test]
fn a_signed_update_installs_and_records_its_generation() {
    let (k, p) = key_and_policy(1, "board-a", 0);
    let v1 = signed_image(1, 30, &k, "board-a", 1);
    let v2 = signed_image(2, 30, &k, "board-a", 2);
    let mut flash = Flash::new(2 * SLOT as usize);
    let r = Form::ByValue
        .update(&mut flash, &v1, p, None, 0, 1000)
        .unwrap();
    let slot = r.slot.unwrap();
    assert!(slot.signed);
    assert_eq!(slot.image_generation, 1);
    assert_eq!(active(&flash).unwrap(), v1);
    Form::ByValue
        .update(&mut flash, &v2, p, Some(&manifest_of(&v2)), 0, 777)
        .unwrap();
    assert_eq!(active(&flash).unwrap(), v2);
    // Re-sending v2, or v1, is a replay of an old generation.
    for old in [&v2, &v1] {
        let err = Form::ByValue
            .update(&mut flash, old, p, Some(&manifest_of(old)), 0, 777)
            .unwrap_err();
        assert!(
            matches!(err, UpdateError::Rollback { installed: 2, .. }),
            "{err}"
        );
    }
    assert_eq!(active(&flash).unwrap(), v2);
}

#[test]
fn forged_or_foreign_manifests_are_refused_before_any_erase() {
    let (k, p) = key_and_policy(1, "board-a", 3);
    let v3 = signed_image(3, 20, &k, "board-a", 3);
    let mut flash = installed(&v3, p);

    let mut cases = refused_everywhere(&k, 4, 5, 3);
    cases.insert(
        2,
        (
            "an older generation",
            signed_image(2, 20, &k, "board-a", 2),
            |e| matches!(e, UpdateError::BelowMinimum { .. }),
        ),
    );
    cases.push((
        "a raised generation",
        {
            let mut v = signed_image(4, 20, &k, "board-a", 4);
            let at = v.len() - SIGNED_MANIFEST_LEN + 16;
            v[at] = 9;
            v
        },
        |e| matches!(e, UpdateError::BadSignature),
    ));
    cases.push((
        "a broken manifest",
        {
            let mut v = signed_image(4, 20, &k, "board-a", 4);
            let at = v.len() - SIGNED_MANIFEST_LEN;
            v[at] = b'X';
            v
        },
        |e| matches!(e, UpdateError::BadManifest(ManifestError::Magic)),
    ));
    for (what, image, expected) in cases {
        let before = flash.contents().to_vec();
        flash.reset_stats();
        let mut buf = vec![0u8; E];
        let up = Updater::begin_ab(&mut flash, layout(), Verify::CommitOnly, &mut buf)
            .unwrap()
            .require_signature(p)
            .unwrap();
        let err = up.with_manifest(&manifest_of(&image)).unwrap_err();
        assert!(expected(&err), "{what}: {err}");
        assert_eq!(
            writes_and_erases(flash.stats()),
            (0, 0),
            "{what}: flash touched"
        );
        assert!(flash.contents() == &before[..], "{what}: flash changed");
        // Streamed without a manifest first, it is refused at the end, and
        // the running image stays.
        let err = Form::ByValue
            .update(&mut flash, &image, p, None, 0, 1500)
            .unwrap_err();
        assert!(expected(&err), "{what} (streamed): {err}");
        assert_eq!(active(&flash).unwrap(), v3, "{what}");
    }
}

#[test]
fn every_single_byte_change_of_a_signed_image_is_refused() {
    let (k, p) = key_and_policy(7, "p", 0);
    let old = signed_image(1, 2, &k, "p", 1);
    let new = signed_image(2, 2, &k, "p", 2);
    let base = installed(&old, p);
    let mut rng = Rng(5);
    for at in 0..new.len() {
        let mut bad = new.clone();
        bad[at] ^= 1 << rng.below(8);
        let mut flash = base.clone();
        let result = Form::ByValue.update(&mut flash, &bad, p, None, 0, 1 + at % 700);
        assert!(
            result.is_err(),
            "a change at byte {at} of {} was accepted",
            new.len()
        );
        assert_eq!(active(&flash).unwrap(), old, "byte {at}");
    }
}

#[test]
fn the_stream_must_be_the_image_the_manifest_describes() {
    let (k, p) = key_and_policy(1, "p", 0);
    let a = signed_image(1, 20, &k, "p", 1);
    let b = signed_image(2, 24, &k, "p", 1);
    let mut flash = Flash::new(2 * SLOT as usize);
    // Another validly signed image than the manifest sent ahead.
    let err = Form::ByValue
        .update(&mut flash, &b, p, Some(&manifest_of(&a)), 0, 999)
        .unwrap_err();
    assert_eq!(err, UpdateError::ManifestMismatch);
    // Longer than the manifest says.
    let mut long = a.clone();
    long.extend_from_slice(&[0; 16]);
    let err = Form::ByValue
        .update(&mut flash, &long, p, Some(&manifest_of(&a)), 0, 999)
        .unwrap_err();
    assert!(matches!(err, UpdateError::TooLong { .. }), "{err}");
    // Cut short.
    let err = Form::ByValue
        .update(
            &mut flash,
            &a[..a.len() - 1],
            p,
            Some(&manifest_of(&a)),
            0,
            999,
        )
        .unwrap_err();
    assert!(matches!(err, UpdateError::Truncated { .. }), "{err}");
    // Unsigned.
    let plain = build(&app_files(9, 10, 1), 1, None);
    let err = Form::ByValue
        .update(&mut flash, &plain, p, None, 0, 999)
        .unwrap_err();
    assert_eq!(err, UpdateError::Unsigned);
    assert!(active(&flash).is_none());
    // And the genuine article goes through.
    Form::ByValue
        .update(&mut flash, &a, p, Some(&manifest_of(&a)), 0, 999)
        .unwrap();
    assert_eq!(active(&flash).unwrap(), a);
}

/// Boot once (counting a trial boot) and return what runs.
fn boot_once(flash: &mut Flash) -> (Booted, Vec<u8>) {
    let booted = boot::boot(flash, &layout(), Verify::CommitOnly).unwrap();
    let fs = mapped::mount_slot(flash.contents(), &booted.slot).unwrap();
    (booted, fs.image().bytes().to_vec())
}

#[test]
fn a_trial_image_rolls_back_unless_confirmed() {
    let (k, p) = key_and_policy(1, "p", 0);
    let v1 = signed_image(1, 20, &k, "p", 1);
    let v2 = signed_image(2, 20, &k, "p", 2);
    let mut flash = installed(&v1, p);
    Form::ByValue
        .update(&mut flash, &v2, p, None, 3, 4096)
        .unwrap();
    // Three trial boots run v2, each costing one write and no erase.
    let v3 = signed_image(3, 20, &k, "p", 3);
    for used in 1..=3 {
        flash.reset_stats();
        let (booted, image) = boot_once(&mut flash);
        assert_eq!(image, v2);
        assert_eq!(booted.slot.trial, Trial::Pending { used, allowed: 3 });
        assert!(!booted.rolled_back);
        assert_eq!(writes_and_erases(flash.stats()), (1, 0));
        if used < 3 {
            // An update while v2 is on trial would overwrite v1: refused.
            assert_eq!(
                Form::ByValue
                    .update(&mut flash, &v3, p, None, 0, 4096)
                    .unwrap_err(),
                UpdateError::TrialPending
            );
        }
    }
    // Never confirmed: the fourth boot falls back to v1, without writing.
    flash.reset_stats();
    let (booted, image) = boot_once(&mut flash);
    assert_eq!(image, v1);
    assert!(booted.rolled_back);
    assert_eq!(booted.slot.trial, Trial::Confirmed);
    assert_eq!(writes_and_erases(flash.stats()), (0, 0));
    assert_eq!(active(&flash).unwrap(), v1, "plain mounting agrees");
    // The next update replaces the failed v2, keeping v1 to fall back to.
    Form::ByValue
        .update(&mut flash, &v3, p, None, 2, 4096)
        .unwrap();
    let (booted, image) = boot_once(&mut flash);
    assert_eq!(
        (image, booted.slot.trial),
        (
            v3.clone(),
            Trial::Pending {
                used: 1,
                allowed: 2
            }
        )
    );
    // Confirmed: it stays, and boots no longer write.
    flash.reset_stats();
    let slot = boot::confirm(&mut flash, &layout(), Verify::CommitOnly).unwrap();
    assert_eq!(slot.trial, Trial::Confirmed);
    assert_eq!(writes_and_erases(flash.stats()), (1, 0));
    for _ in 0..5 {
        flash.reset_stats();
        let (booted, image) = boot_once(&mut flash);
        assert_eq!(
            (image.as_slice(), booted.slot.trial),
            (&v3[..], Trial::Confirmed)
        );
        assert_eq!(writes_and_erases(flash.stats()), (0, 0));
    }
}

/// Run `op` on a copy of `base` with power cut at each of its flash
/// operations, in several partial states, and hand each result to `check`.
/// Returns the number of cut points.
fn every_cut(
    base: &Flash,
    op: impl Fn(&mut Flash) -> bool,
    mut check: impl FnMut(&mut Flash, u64, Partial),
) -> u64 {
    let mut clean = base.clone();
    let start = clean.ops();
    assert!(op(&mut clean), "the operation works uncut");
    let ops = clean.ops() - start;
    let mut cuts = 0;
    for i in 0..ops {
        for p in partials(i) {
            let mut f = base.clone();
            f.cut_power_at(f.ops() + i, p);
            assert!(!op(&mut f), "a cut at operation {i} went unnoticed");
            f.reboot();
            check(&mut f, i, p);
            cuts += 1;
        }
    }
    cuts
}

#[test]
fn power_cuts_during_a_signed_trial_update_confirm_and_boots() {
    let (k, p) = key_and_policy(3, "p", 0);
    let v1 = signed_image(1, 12, &k, "p", 1);
    let v2 = signed_image(2, 12, &k, "p", 2);
    let mut base = installed(&v1, p);
    base.reboot();

    // The update itself: v1 or (only once committed) v2 on trial.
    let update_cuts = every_cut(
        &base,
        |f| {
            Form::ByValue
                .update(f, &v2, p, Some(&manifest_of(&v2)), 2, 1000)
                .is_ok()
        },
        |f, _, _| {
            let (booted, image) = boot_once(f);
            if image == v2 {
                assert!(
                    matches!(booted.slot.trial, Trial::Pending { .. }),
                    "confirmed too early"
                );
            } else {
                assert_eq!(image, v1);
            }
        },
    );

    // Booting on trial: a cut during the boot count never confirms, and the
    // image is v2 on trial or (boots used up) v1.
    let mut trial = base.clone();
    Form::ByValue
        .update(&mut trial, &v2, p, None, 2, 4096)
        .unwrap();
    trial.reboot();
    let boot_cuts = every_cut(
        &trial,
        |f| boot::boot(f, &layout(), Verify::CommitOnly).is_ok(),
        |f, _, _| {
            let (booted, image) = boot_once(f);
            assert_ne!(
                booted.slot.trial,
                Trial::Confirmed,
                "a boot count confirmed v2"
            );
            assert_eq!(image, v2);
            // The last trial boot, then the rollback.
            let (booted, image) = boot_once(f);
            if image == v2 {
                assert!(matches!(booted.slot.trial, Trial::Pending { .. }));
                let (_, image) = boot_once(f);
                assert_eq!(image, v1);
            } else {
                assert_eq!(image, v1);
                assert!(booted.rolled_back);
            }
        },
    );

    // Confirming: cut, it is confirmed only if the whole unit was written;
    // a retried confirm then succeeds.
    let mut booted = trial.clone();
    boot_once(&mut booted);
    booted.reboot();
    let confirm_cuts = every_cut(
        &booted,
        |f| boot::confirm(f, &layout(), Verify::CommitOnly).is_ok(),
        |f, _, p| {
            let state = slots::select(&mut f.contents(), &layout(), Verify::CommitOnly)
                .unwrap()
                .unwrap()
                .trial;
            match p {
                Partial::Everything => assert_eq!(state, Trial::Confirmed),
                _ => assert!(matches!(state, Trial::Pending { .. }), "{p:?}: {state:?}"),
            }
            assert_eq!(
                boot::confirm(f, &layout(), Verify::CommitOnly)
                    .unwrap()
                    .trial,
                Trial::Confirmed
            );
            assert_eq!(boot_once(f).1, v2);
        },
    );
    eprintln!(
        "cut points: signed trial update {update_cuts}, trial boot {boot_cuts}, confirm {confirm_cuts}"
    );
    assert!(update_cuts > 50 && boot_cuts >= 5 && confirm_cuts >= 5);
}

#[test]
fn an_interrupted_update_resumes_where_it_stopped() {
    let (k, p) = key_and_policy(4, "p", 0);
    let v1 = signed_image(1, 30, &k, "p", 1);
    let v2 = signed_image(2, 30, &k, "p", 2);
    let manifest = manifest_of(&v2);
    let mut base = installed(&v1, p);
    base.reboot();

    let send = |f: &mut Flash, resume: bool| -> Result<(u32, romfs_embedded::Report)> {
        let mut buf = vec![0u8; E];
        let mut up = Updater::begin_ab(&mut *f, layout(), Verify::CommitOnly, &mut buf)?
            .require_signature(p)?
            .with_manifest(&manifest)?;
        let from = if resume { up.resume()? } else { 0 };
        v2[from as usize..]
            .chunks(1460)
            .try_for_each(|c| up.write(c))?;
        Ok((from, up.finish(None)?))
    };
    let mut resumed_from = Vec::new();
    let cuts = every_cut(
        &base,
        |f| send(f, false).is_ok(),
        |f, i, part| {
            let now = active(f).unwrap();
            if now == v2 {
                // Cut while the commit record was written, which landed.
                return;
            }
            assert!(now == v1, "cut at {i}: the old image must stay");
            let mut again = f.clone();
            let (from, _) = send(&mut again, true)
                .unwrap_or_else(|e| panic!("resume after cut {i} ({part:?}): {e}"));
            assert_eq!(from % E as u32, 0);
            assert!(active(&again).unwrap() == v2);
            resumed_from.push(from);
            // The resumed update can itself be cut, and resumed again.
            if i % 7 == 0 {
                let mut g = f.clone();
                g.cut_power_at(g.ops() + 5 + i % 11, Partial::RandomBits(i));
                if send(&mut g, true).is_err() {
                    g.reboot();
                    if active(&g).unwrap() != v2 {
                        send(&mut g, true).unwrap();
                    }
                }
                assert!(active(&g).unwrap() == v2);
            }
        },
    );
    let furthest = *resumed_from.iter().max().unwrap();
    assert!(
        furthest as usize >= v2.len() - 2 * E,
        "late cuts resume near the end (from {furthest} of {})",
        v2.len()
    );
    eprintln!(
        "resume: {cuts} cut points, resumed from up to byte {furthest} of {}",
        v2.len()
    );
}

/// A/B delta update: `patch` applied to the running image, the result
/// signed per `policy`, optionally with its manifest sent ahead.
fn update_delta(
    flash: &mut Flash,
    patch: &[u8],
    policy: TrustPolicy,
    manifest: Option<&[u8]>,
    chunk: usize,
) -> Result<romfs_embedded::Report> {
    let mut buf = vec![0u8; E];
    let up = Updater::begin_ab(&mut *flash, layout(), Verify::CommitOnly, &mut buf)?;
    let mut up = signed(up, policy, manifest)?;
    let mut delta = up.delta()?;
    patch.chunks(chunk).try_for_each(|c| delta.write(c))?;
    delta.finish(None)
}

#[test]
fn a_signed_delta_update_is_checked_like_a_full_one() {
    use romfs_format::delta::diff;
    let (k, p) = key_and_policy(1, "board-a", 0);
    let v1 = signed_image(1, 20, &k, "board-a", 1);
    let mut flash = installed(&v1, p);

    let cases = refused_everywhere(&k, 2, 2, 1);
    for (what, image, expected) in cases {
        let patch = diff(&v1, &image);
        // Streamed: refused before the commit, the running image stays.
        let err = update_delta(&mut flash, &patch, p, None, 333).unwrap_err();
        assert!(expected(&err), "{what}: {err}");
        assert_eq!(active(&flash).unwrap(), v1, "{what}");
        // With the manifest ahead: refused before any write.
        flash.reset_stats();
        let err = update_delta(&mut flash, &patch, p, Some(&manifest_of(&image)), 333).unwrap_err();
        assert!(expected(&err), "{what} (manifest ahead): {err}");
        assert_eq!(writes_and_erases(flash.stats()), (0, 0), "{what}");
    }
    let v2 = signed_image(2, 20, &k, "board-a", 2);
    let patch = diff(&v1, &v2);
    let r = update_delta(&mut flash, &patch, p, Some(&manifest_of(&v2)), 1).unwrap();
    let slot = r.slot.unwrap();
    assert!(slot.signed);
    assert_eq!(slot.image_generation, 2);
    assert_eq!(active(&flash).unwrap(), v2);
}

#[test]
fn the_in_place_forms_install_and_refuse_as_the_by_value_ones() {
    let (k, p) = key_and_policy(1, "board-a", 2);
    let installed = installed(&signed_image(3, 20, &k, "board-a", 3), p);
    let v4 = signed_image(4, 20, &k, "board-a", 4);
    let forged = forged(v4.clone());
    let other_key = signed_image(5, 20, &key(2), "board-a", 5);
    let replay = signed_image(3, 20, &k, "board-a", 3);
    // (case, image, manifest sent first, trial boots, installs)
    #[rustfmt::skip] // one case a line
    let cases: &[(&str, &[u8], bool, u8, bool)] = &[
        ("a new generation", &v4, false, 0, true),
        ("a new generation, manifest first", &v4, true, 0, true),
        ("on trial", &v4, true, 2, true),
        ("a forged signature", &forged, false, 0, false),
        ("a forged signature, manifest first", &forged, true, 0, false),
        ("another key", &other_key, true, 0, false),
        ("a replay", &replay, true, 0, false),
        ("too many trial boots", &v4, true, 200, false),
    ];
    for &(what, image, manifest_first, boots, installs) in cases {
        let manifest = manifest_first.then(|| manifest_of(image));
        let (mut by_value, mut in_place) = (installed.clone(), installed.clone());
        let a = Form::ByValue.update(
            &mut by_value,
            image,
            p,
            manifest.as_ref().map(|m| &m[..]),
            boots,
            1000,
        );
        let b = Form::InPlace.update(
            &mut in_place,
            image,
            p,
            manifest.as_ref().map(|m| &m[..]),
            boots,
            1000,
        );
        assert_eq!(b.is_ok(), installs, "{what}: {b:?}");
        match (&a, &b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what}"),
            _ => panic!("{what}: by value {a:?}, in place {b:?}"),
        }
        assert!(
            by_value.contents() == in_place.contents(),
            "{what}: flash differs"
        );
        let stats = (by_value.stats(), in_place.stats());
        assert_eq!(
            writes_and_erases(stats.0),
            writes_and_erases(stats.1),
            "{what}"
        );
    }
}
