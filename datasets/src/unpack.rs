//! Unpacking zip and tar.gz archives, refusing any entry that could escape the target folder.
//!
//! Every entry of the archive is checked before anything is written (zip) or as it streams by
//! (tar.gz, whose partial output is then removed): an absolute path, a `..` component or a link
//! makes the whole archive an [`Error::UnsafeArchiveEntry`]. Only the members asked for are
//! written; a member that is absent is an [`Error::MissingMember`].

use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::manifest::ArchiveKind;
use crate::{Error, io_error};

/// Extracts `members` (paths inside the archive) of `archive` under `target`.
pub fn unpack_members(archive: &Path, kind: ArchiveKind, members: &[&str], target: &Path) -> Result<(), Error> {
    fs::create_dir_all(target).map_err(io_error(target))?;
    let result = match kind {
        ArchiveKind::Zip => unpack_zip(archive, members, target),
        ArchiveKind::TarGz => unpack_tar_gz(archive, members, target),
    };
    if result.is_err() {
        let _ = fs::remove_dir_all(target);
    }
    result
}

fn safe_relative(entry: &str) -> Option<PathBuf> {
    let path = Path::new(entry);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!clean.as_os_str().is_empty()).then_some(clean)
}

fn unsafe_entry(archive: &Path, entry: &str) -> Error {
    Error::UnsafeArchiveEntry { archive: archive.to_path_buf(), entry: entry.to_owned() }
}

fn unpack_zip(archive_path: &Path, members: &[&str], target: &Path) -> Result<(), Error> {
    let file = File::open(archive_path).map_err(io_error(archive_path))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|err| zip_error(archive_path, err))?;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|err| zip_error(archive_path, err))?;
        if safe_relative(entry.name()).is_none() || entry.is_symlink() {
            return Err(unsafe_entry(archive_path, entry.name()));
        }
    }
    for member in members {
        let mut entry = match archive.by_name(member) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(Error::MissingMember { archive: archive_path.to_path_buf(), member: member.to_string() });
            }
            Err(err) => return Err(zip_error(archive_path, err)),
        };
        let relative = safe_relative(member).ok_or_else(|| unsafe_entry(archive_path, member))?;
        write_entry(&mut entry, &target.join(relative))?;
    }
    Ok(())
}

fn unpack_tar_gz(archive_path: &Path, members: &[&str], target: &Path) -> Result<(), Error> {
    let file = File::open(archive_path).map_err(io_error(archive_path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = vec![false; members.len()];
    for entry in archive.entries().map_err(io_error(archive_path))? {
        let mut entry = entry.map_err(io_error(archive_path))?;
        let name = entry.path().map_err(io_error(archive_path))?.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if safe_relative(&name).is_none() || !(kind.is_file() || kind.is_dir()) {
            return Err(unsafe_entry(archive_path, &name));
        }
        let clean = safe_relative(&name).expect("checked just above");
        if let Some(position) = members.iter().position(|member| safe_relative(member).as_ref() == Some(&clean)) {
            write_entry(&mut entry, &target.join(&clean))?;
            found[position] = true;
        }
    }
    if let Some(position) = found.iter().position(|found| !found) {
        return Err(Error::MissingMember { archive: archive_path.to_path_buf(), member: members[position].to_owned() });
    }
    Ok(())
}

fn write_entry(reader: &mut impl io::Read, path: &Path) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let mut out = File::create(path).map_err(io_error(path))?;
    io::copy(reader, &mut out).map_err(io_error(path))?;
    Ok(())
}

fn zip_error(archive: &Path, err: zip::result::ZipError) -> Error {
    Error::Io { path: archive.to_path_buf(), source: io::Error::other(err) }
}
