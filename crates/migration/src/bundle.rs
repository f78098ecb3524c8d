//! The backup bundle: a private directory with every object the hand-over touches.
//!
//! Layout (directories 0700, files 0600: Secrets are inside):
//! ```text
//! <bundle>/manifest.json                      what is inside, a SHA-256 per file; written last
//! <bundle>/journal.jsonl                      the journal (see `journal`), not in the manifest
//! <bundle>/objects/<section>/<group>_<version>_<Kind>.jsonl   one object per line
//! <bundle>/inventory/<n>/<relative path>      copies of the inventory files
//! <bundle>/etcd/snapshot.db                    an etcd snapshot (only with `--etcd-snapshot`)
//! <bundle>/written/<n>.before, <n>.after       each file the hand-over wrote outside the bundle
//!                                             (inventory edits, the values file), before and after
//! ```
//! The hand-over records each file it writes outside the bundle *before* writing it
//! ([`Bundle::record_write`]): a rollback restores exactly those files, and only while they still
//! hold what the hand-over wrote ([`Bundle::check_written`], [`Bundle::restore_written`]).
//! Sections: `handover` (the template-era objects, the kept Secrets, and whatever else the
//! caller names, e.g. rendered objects that exist live), `custom-resources` (every `cilium.io`
//! object of every kind the API serves), `crds` (the Cilium CRDs, for reference: they are never
//! changed), `helm-release` (the storage Secrets of release `cilium`).
//!
//! Lists are paged (`limit` + `continue`) and each page is written out before the next is
//! requested, so memory stays flat however many objects the cluster has. `managedFields` are
//! dropped (like `kubectl get -o yaml` does): they are server bookkeeping, never restored.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, TypeMeta};
use kube::discovery::{self, Discovery, Scope};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::identity::ClusterIdentity;
use crate::journal::{JOURNAL_FILE, Journal, JournalError, Step, StepState, now, sync_dir};
use crate::object::{self, ObjectRef, group_of, is_cilium_group};
use crate::template_era::{self, NAMESPACE};

/// Name of the manifest file.
pub const MANIFEST_FILE: &str = "manifest.json";
const OBJECTS_DIR: &str = "objects";
const INVENTORY_DIR: &str = "inventory";
const ETCD_DIR: &str = "etcd";
const WRITTEN_DIR: &str = "written";
/// Path of the etcd snapshot relative to the bundle directory.
pub const ETCD_SNAPSHOT_FILE: &str = "etcd/snapshot.db";

/// A hand-over object to back up: reference, API resource, namespaced.
type Wanted = (ObjectRef, ApiResource, bool);
/// Objects per list request.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// Which part of the backup a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Objects the hand-over changes; what rollback restores.
    Handover,
    /// Every `cilium.io` custom resource.
    CustomResources,
    /// The Cilium CRDs.
    Crds,
    /// Storage Secrets of release `cilium`.
    HelmRelease,
}

impl Section {
    fn dir_name(self) -> &'static str {
        match self {
            Section::Handover => "handover",
            Section::CustomResources => "custom-resources",
            Section::Crds => "crds",
            Section::HelmRelease => "helm-release",
        }
    }
}

/// One file of objects: one kind, one section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectFile {
    /// Path relative to the bundle directory.
    pub path: String,
    /// Section.
    pub section: Section,
    /// API version of the objects.
    pub api_version: String,
    /// Kind of the objects.
    pub kind: String,
    /// Plural resource name.
    pub plural: String,
    /// Whether the kind is namespaced.
    pub namespaced: bool,
    /// Number of objects (lines).
    pub count: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

impl ObjectFile {
    /// The API resource to read or write these objects.
    pub fn api_resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(
            group_of(&self.api_version),
            object::version_of(&self.api_version),
            &self.kind,
        );
        ApiResource::from_gvk_with_plural(&gvk, &self.plural)
    }
}

/// One copied inventory file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryFile {
    /// Where it came from (absolute).
    pub original: PathBuf,
    /// Path of the copy relative to the bundle directory.
    pub path: String,
    /// Permission bits of the original.
    pub mode: u32,
    /// Hex SHA-256.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Bundle format version.
    pub format: u32,
    /// Seconds since the epoch.
    pub created: u64,
    /// The cluster the objects come from.
    pub cluster: ClusterIdentity,
    /// Object files.
    pub objects: Vec<ObjectFile>,
    /// Hand-over objects that were looked up and did not exist (rollback must not create them).
    pub absent: Vec<ObjectRef>,
    /// Inventory copies.
    pub inventory: Vec<InventoryFile>,
    /// The etcd snapshot, when one was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_snapshot: Option<EtcdSnapshotFile>,
    /// Files the hand-over wrote outside the bundle, in the order first written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub written: Vec<WrittenFile>,
}

/// A file the hand-over wrote outside the bundle (an inventory edit, the values file), recorded
/// before it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    /// The file (absolute, symlinks resolved: the file itself, never a link to it).
    pub path: PathBuf,
    /// What it held before, when it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<FileCopy>,
    /// What the hand-over wrote.
    pub after: FileCopy,
}

/// A copy of a file's content in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCopy {
    /// Path of the copy relative to the bundle directory.
    pub copy: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Permission bits the file had (or was given).
    pub mode: u32,
}

/// What a rollback does to one file the hand-over wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrittenRestore {
    /// It holds what the hand-over wrote: write back what it held before.
    Restore,
    /// It holds what the hand-over wrote and did not exist before: remove it.
    Remove,
    /// It already holds what it held before (undone by hand, or the write never happened).
    Untouched,
}

/// An etcd snapshot in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdSnapshotFile {
    /// Path relative to the bundle directory ([`ETCD_SNAPSHOT_FILE`]).
    pub path: String,
    /// The inventory host it was taken on.
    pub node: String,
    /// The etcd endpoint etcdctl was given.
    pub endpoint: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

/// How much of a streamed etcd snapshot [`EtcdSnapshotWriter::head`] keeps: one bbolt page,
/// which holds the magic number.
pub const ETCD_SNAPSHOT_HEAD_BYTES: usize = 4096;

/// The bundle's etcd snapshot file while it streams in: hashes (SHA-256) and counts what is
/// written and keeps the first page, so nothing needs the whole snapshot in memory. Dropped
/// without [`Bundle::finish_etcd_snapshot`], it removes the partial file (and `etcd/` when
/// that is then empty): a failed snapshot leaves nothing in the bundle.
#[derive(Debug)]
pub struct EtcdSnapshotWriter {
    path: PathBuf,
    etcd_dir: PathBuf,
    file: File,
    hasher: Sha256,
    bytes: u64,
    head: Vec<u8>,
    finished: bool,
}

impl EtcdSnapshotWriter {
    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The first [`ETCD_SNAPSHOT_HEAD_BYTES`] written (fewer when less was written).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Hex SHA-256 of what was written so far.
    pub fn sha256(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

impl Write for EtcdSnapshotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        let written = &buf[..n];
        self.hasher.update(written);
        self.bytes += n as u64;
        let room = ETCD_SNAPSHOT_HEAD_BYTES.saturating_sub(self.head.len());
        self.head
            .extend_from_slice(&written[..room.min(written.len())]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for EtcdSnapshotWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.path);
            let _ = fs::remove_dir(&self.etcd_dir);
        }
    }
}

/// Errors writing, reading or checking a bundle. Each names the path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// API error while reading objects.
    #[error("backing up {what}: {source}")]
    Api {
        /// What was being read.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// The directory holds files that are not part of a bundle.
    #[error(
        "{path} is not empty and not a bundle (found {found}); choose an empty or new directory"
    )]
    NotABundle {
        /// The directory.
        path: PathBuf,
        /// An unexpected entry.
        found: String,
    },
    /// A file the hand-over wrote changed since: the rollback does not overwrite it.
    #[error(
        "{}: changed since the hand-over wrote it, so the rollback does not overwrite it; nothing was changed; \
         fix: undo those changes (the file then holds what the hand-over wrote, and the rollback restores it), \
         or put back what it held before the hand-over yourself ({}), then run the rollback again. \
         The changes since the hand-over:\n{diff}",
        path.display(),
        before.as_ref().map_or_else(|| "it did not exist: remove it".to_owned(), |b| format!("a copy is {}", b.display()))
    )]
    ChangedSinceHandover {
        /// The file.
        path: PathBuf,
        /// The copy of what it held before the hand-over (`None`: it did not exist).
        before: Option<PathBuf>,
        /// What changed since the hand-over wrote it (unified diff).
        diff: String,
    },
    /// A bundle check failed.
    #[error("bundle {path}: {problem}; {fix}")]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
        /// What to do.
        fix: &'static str,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What to back up.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The bundle directory (created 0700 if missing; may already hold the journal).
    pub dir: PathBuf,
    /// Identity of the cluster (recorded in the manifest).
    pub cluster: ClusterIdentity,
    /// Objects to back up besides the template-era list and the kept Secrets, e.g. the live
    /// counterparts of what the chart renders.
    pub extra_objects: Vec<ObjectRef>,
    /// Inventory files or directories (directories are copied recursively).
    pub inventory: Vec<PathBuf>,
    /// Objects per list request.
    pub page_size: u32,
}

/// A bundle on disk.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
}

/// What `verify` read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Objects per section.
    pub objects: BTreeMap<String, u64>,
    /// Inventory files.
    pub inventory_files: usize,
    /// Size of the etcd snapshot, when there is one.
    pub etcd_snapshot_bytes: Option<u64>,
}

/// Hashes and counts what passes through.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes one object file line by line.
struct ObjectFileWriter {
    path: PathBuf,
    rel: String,
    out: HashingWriter<BufWriter<File>>,
    count: u64,
}

impl ObjectFileWriter {
    fn create(
        dir: &Path,
        section: Section,
        api_version: &str,
        kind: &str,
    ) -> Result<Self, BundleError> {
        let section_dir = dir.join(OBJECTS_DIR).join(section.dir_name());
        make_private_dir(&section_dir)?;
        let group = match group_of(api_version) {
            "" => "core",
            g => g,
        };
        let file_name = format!("{group}_{}_{kind}.jsonl", object::version_of(api_version));
        let path = section_dir.join(&file_name);
        let file = create_private_file(&path)?;
        Ok(ObjectFileWriter {
            rel: format!("{OBJECTS_DIR}/{}/{file_name}", section.dir_name()),
            path,
            out: HashingWriter {
                inner: BufWriter::new(file),
                hasher: Sha256::new(),
            },
            count: 0,
        })
    }

    fn write(&mut self, mut object: DynamicObject, types: &TypeMeta) -> Result<(), BundleError> {
        // List items of built-in kinds come without apiVersion/kind.
        object.types = Some(types.clone());
        object.metadata.managed_fields = None;
        let line = serde_json::to_vec(&object).map_err(|e| BundleError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        self.out.write_all(&line).map_err(io_err(&self.path))?;
        self.out.write_all(b"\n").map_err(io_err(&self.path))?;
        self.count += 1;
        Ok(())
    }

    fn finish(
        self,
        section: Section,
        resource: &ApiResource,
        namespaced: bool,
    ) -> Result<ObjectFile, BundleError> {
        let HashingWriter { inner, hasher } = self.out;
        let file = inner.into_inner().map_err(|e| BundleError::Io {
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err(&self.path))?;
        Ok(ObjectFile {
            path: self.rel,
            section,
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
            plural: resource.plural.clone(),
            namespaced,
            count: self.count,
            sha256: hex(&hasher.finalize()),
        })
    }
}

impl Bundle {
    /// Backs up the cluster into `request.dir` and returns the bundle; the caller then runs
    /// [`Bundle::verify`] before changing anything. Re-running over an incomplete backup
    /// (journal step `backup` cut short) rewrites it.
    pub async fn create(client: &Client, request: &BackupRequest) -> Result<Bundle, BundleError> {
        let dir = &request.dir;
        prepare_dir(dir)?;
        let page = request.page_size.max(1);
        let mut manifest = Manifest {
            format: 1,
            created: now(),
            cluster: request.cluster.clone(),
            objects: Vec::new(),
            absent: Vec::new(),
            inventory: Vec::new(),
            etcd_snapshot: None,
            written: Vec::new(),
        };

        // 1. Hand-over objects, by name, one file per kind.
        let mut wanted: Vec<Wanted> = Vec::new();
        for r in template_era::template_object_refs() {
            let kind = template_era::template_kind(&r).ok_or_else(|| BundleError::Invalid {
                path: dir.clone(),
                problem: format!("no template kind for {r}"),
                fix: "this is a bug in the migration crate",
            })?;
            let gvk = GroupVersionKind::gvk(r.group(), r.version(), &r.kind);
            wanted.push((
                r,
                ApiResource::from_gvk_with_plural(&gvk, kind.plural),
                kind.namespaced,
            ));
        }
        for name in template_era::KEPT_SECRETS {
            let r = ObjectRef::new("v1", "Secret", Some(NAMESPACE), name);
            let gvk = GroupVersionKind::gvk("", "v1", "Secret");
            wanted.push((r, ApiResource::from_gvk_with_plural(&gvk, "secrets"), true));
        }
        for r in &request.extra_objects {
            if wanted.iter().any(|(w, _, _)| w.same_object(r)) {
                continue;
            }
            let gvk = GroupVersionKind::gvk(r.group(), r.version(), &r.kind);
            let (resource, caps) = match discovery::pinned_kind(client, &gvk).await {
                Ok(found) => found,
                // A kind the server does not serve has no objects to back up.
                Err(e) if crate::adopt::is_not_served(&e) => {
                    manifest.absent.push(r.clone());
                    continue;
                }
                Err(source) => {
                    return Err(BundleError::Api {
                        what: format!("discovery of {}", r.kind),
                        source,
                    });
                }
            };
            let namespaced = caps.scope == Scope::Namespaced;
            let mut r = r.clone();
            // Rendered objects often leave the namespace to the release: it is kube-system.
            if namespaced && r.namespace.is_none() {
                r.namespace = Some(NAMESPACE.to_owned());
            }
            wanted.push((r, resource, namespaced));
        }
        let mut by_kind: BTreeMap<(String, String), Vec<Wanted>> = BTreeMap::new();
        for w in wanted {
            by_kind
                .entry((w.1.api_version.clone(), w.1.kind.clone()))
                .or_default()
                .push(w);
        }
        for ((api_version, kind), objects) in by_kind {
            let types = TypeMeta {
                api_version: api_version.clone(),
                kind: kind.clone(),
            };
            let (resource, namespaced) = (objects[0].1.clone(), objects[0].2);
            let mut writer = ObjectFileWriter::create(dir, Section::Handover, &api_version, &kind)?;
            for (r, resource, namespaced) in objects {
                let api: Api<DynamicObject> = match (&r.namespace, namespaced) {
                    (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &resource),
                    (None, true) => Api::namespaced_with(client.clone(), NAMESPACE, &resource),
                    (_, false) => Api::all_with(client.clone(), &resource),
                };
                match api.get_opt(&r.name).await {
                    Ok(Some(o)) => writer.write(o, &types)?,
                    Ok(None) => manifest.absent.push(r),
                    Err(source) => {
                        return Err(BundleError::Api {
                            what: r.to_string(),
                            source,
                        });
                    }
                }
            }
            manifest
                .objects
                .push(writer.finish(Section::Handover, &resource, namespaced)?);
        }

        // 2. Storage Secrets of the release.
        let secrets = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Secret"),
            "secrets",
        );
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), crate::era::RELEASE_NAMESPACE, &secrets);
        let selector = format!("owner=helm,name={}", crate::era::RELEASE_NAME);
        manifest.objects.push(
            write_listed(
                dir,
                Section::HelmRelease,
                &api,
                &secrets,
                true,
                Some(&selector),
                page,
                |_| true,
            )
            .await?,
        );

        // 3. The Cilium CRDs (reference only).
        let crds = ApiResource::erase::<CustomResourceDefinition>(&());
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &crds);
        manifest.objects.push(
            write_listed(dir, Section::Crds, &api, &crds, false, None, page, |o| {
                o.data
                    .pointer("/spec/group")
                    .and_then(Value::as_str)
                    .is_some_and(is_cilium_group)
            })
            .await?,
        );

        // 4. Every cilium.io custom resource of every kind the API serves.
        let groups = client
            .list_api_groups()
            .await
            .map_err(|source| BundleError::Api {
                what: "the list of API groups".into(),
                source,
            })?;
        let cilium_groups: Vec<String> = groups
            .groups
            .into_iter()
            .map(|g| g.name)
            .filter(|g| is_cilium_group(g))
            .collect();
        if !cilium_groups.is_empty() {
            let names: Vec<&str> = cilium_groups.iter().map(String::as_str).collect();
            let found = Discovery::new(client.clone())
                .filter(&names)
                .run()
                .await
                .map_err(|source| BundleError::Api {
                    what: "discovery of cilium.io".into(),
                    source,
                })?;
            for group in found.groups() {
                // Every kind at its most stable version: `recommended_resources` would only
                // list the kinds of the group's preferred version (v2 hides v2alpha1 kinds).
                let mut kinds = group.resources_by_stability();
                kinds.sort_by(|a, b| a.0.kind.cmp(&b.0.kind));
                for (resource, caps) in kinds {
                    if !caps.supports_operation(kube::discovery::verbs::LIST) {
                        continue;
                    }
                    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
                    let namespaced = caps.scope == Scope::Namespaced;
                    manifest.objects.push(
                        write_listed(
                            dir,
                            Section::CustomResources,
                            &api,
                            &resource,
                            namespaced,
                            None,
                            page,
                            |_| true,
                        )
                        .await?,
                    );
                }
            }
        }

        // 5. Inventory files.
        for (n, source) in request.inventory.iter().enumerate() {
            copy_inventory(dir, n, source, &mut manifest.inventory)?;
        }

        // 6. The manifest, last: its presence means the backup is complete.
        write_manifest(dir, &manifest)?;
        Ok(Bundle {
            dir: dir.clone(),
            manifest,
        })
    }

    /// Opens an existing bundle (reads the manifest; see [`Bundle::verify`] for the checks).
    pub fn open(dir: &Path) -> Result<Bundle, BundleError> {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| BundleError::Invalid {
            path: path.clone(),
            problem: format!("manifest does not parse: {e}"),
            fix: "the backup is incomplete or damaged; take a new backup",
        })?;
        Ok(Bundle {
            dir: dir.to_owned(),
            manifest,
        })
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Adds an etcd snapshot (`etcd/snapshot.db`, 0600) and records it in the manifest, which
    /// is rewritten atomically. A bundle holds at most one snapshot.
    pub fn add_etcd_snapshot(
        &mut self,
        content: &[u8],
        node: &str,
        endpoint: &str,
    ) -> Result<EtcdSnapshotFile, BundleError> {
        let mut writer = self.etcd_snapshot_writer()?;
        let path = writer.path.clone();
        writer.write_all(content).map_err(io_err(&path))?;
        self.finish_etcd_snapshot(writer, node, endpoint)
    }

    /// Starts the etcd snapshot file (`etcd/snapshot.db`, created 0600) for streaming into;
    /// [`Bundle::finish_etcd_snapshot`] records it. A bundle holds at most one snapshot.
    pub fn etcd_snapshot_writer(&self) -> Result<EtcdSnapshotWriter, BundleError> {
        let path = self.dir.join(ETCD_SNAPSHOT_FILE);
        if self.manifest.etcd_snapshot.is_some() || path.exists() {
            return Err(BundleError::Invalid {
                path,
                problem: "already holds an etcd snapshot".into(),
                fix: "a bundle is never overwritten; choose a new bundle directory",
            });
        }
        let etcd_dir = self.dir.join(ETCD_DIR);
        make_private_dir(&etcd_dir)?;
        let file = match create_private_file(&path) {
            Ok(file) => file,
            Err(e) => {
                let _ = fs::remove_dir(&etcd_dir);
                return Err(e);
            }
        };
        Ok(EtcdSnapshotWriter {
            path,
            etcd_dir,
            file,
            hasher: Sha256::new(),
            bytes: 0,
            head: Vec::with_capacity(ETCD_SNAPSHOT_HEAD_BYTES),
            finished: false,
        })
    }

    /// Syncs a streamed snapshot to disk and records it in the manifest (rewritten atomically).
    /// On error the file is removed, as when the writer is dropped unfinished.
    pub fn finish_etcd_snapshot(
        &mut self,
        mut writer: EtcdSnapshotWriter,
        node: &str,
        endpoint: &str,
    ) -> Result<EtcdSnapshotFile, BundleError> {
        writer.file.sync_all().map_err(io_err(&writer.path))?;
        let file = EtcdSnapshotFile {
            path: ETCD_SNAPSHOT_FILE.into(),
            node: node.into(),
            endpoint: endpoint.into(),
            bytes: writer.bytes,
            sha256: writer.sha256(),
        };
        let mut manifest = self.manifest.clone();
        manifest.etcd_snapshot = Some(file.clone());
        write_manifest(&self.dir, &manifest)?;
        writer.finished = true;
        self.manifest = manifest;
        Ok(file)
    }

    /// Reads everything back: permissions (directories 0700, files 0600), the SHA-256 of each
    /// file, that every line parses as an object of the file's kind, the object counts, and that
    /// no unlisted file sits among the objects or the inventory copies.
    pub fn verify(&self) -> Result<VerifyReport, BundleError> {
        let mut report = VerifyReport::default();
        check_mode(&self.dir, 0o700)?;
        check_mode(&self.dir.join(MANIFEST_FILE), 0o600)?;
        let mut listed: Vec<PathBuf> = Vec::new();
        for f in &self.manifest.objects {
            let path = self.dir.join(&f.path);
            check_mode(&path, 0o600)?;
            let file = File::open(&path).map_err(io_err(&path))?;
            let mut reader = BufReader::new(HashingReader {
                inner: file,
                hasher: Sha256::new(),
            });
            let mut count = 0u64;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).map_err(io_err(&path))? == 0 {
                    break;
                }
                count += 1;
                let invalid = |problem: String| BundleError::Invalid {
                    path: path.clone(),
                    problem: format!("line {count}: {problem}"),
                    fix: "the backup is damaged; take a new backup",
                };
                let value: Value = serde_json::from_str(&line)
                    .map_err(|e| invalid(format!("not a JSON object: {e}")))?;
                let r = ObjectRef::of(&value)
                    .ok_or_else(|| invalid("apiVersion, kind or metadata.name missing".into()))?;
                if r.kind != f.kind || r.api_version != f.api_version {
                    return Err(invalid(format!(
                        "{} {} in a file of {} {}",
                        r.api_version, r.kind, f.api_version, f.kind
                    )));
                }
            }
            let hasher = reader.into_inner().hasher;
            let sum = hex(&hasher.finalize());
            if sum != f.sha256 {
                return Err(BundleError::Invalid {
                    path,
                    problem: format!("SHA-256 {sum} differs from the manifest's {}", f.sha256),
                    fix: "the file changed after the backup; take a new backup",
                });
            }
            if count != f.count {
                return Err(BundleError::Invalid {
                    path,
                    problem: format!("{count} objects, the manifest says {}", f.count),
                    fix: "the backup is damaged; take a new backup",
                });
            }
            *report
                .objects
                .entry(f.section.dir_name().to_owned())
                .or_default() += count;
            listed.push(self.dir.join(&f.path));
        }
        for f in &self.manifest.inventory {
            let path = self.dir.join(&f.path);
            check_private_file(
                &path,
                &f.sha256,
                "the inventory copy changed after the backup; take a new backup",
            )?;
            listed.push(path);
            report.inventory_files += 1;
        }
        if let Some(f) = &self.manifest.etcd_snapshot {
            let path = self.dir.join(&f.path);
            check_private_file(
                &path,
                &f.sha256,
                "the etcd snapshot changed after the backup; take a new backup",
            )?;
            listed.push(path);
            report.etcd_snapshot_bytes = Some(f.bytes);
        }
        for w in &self.manifest.written {
            for copy in w.before.iter().chain([&w.after]) {
                let path = self.dir.join(&copy.copy);
                check_private_file(
                    &path,
                    &copy.sha256,
                    "a copy of a file the hand-over wrote changed; restore that file by hand",
                )?;
                listed.push(path);
            }
        }
        for sub in [OBJECTS_DIR, INVENTORY_DIR, ETCD_DIR, WRITTEN_DIR] {
            check_tree(&self.dir.join(sub), &listed)?;
        }
        Ok(report)
    }

    /// The objects of one file, read lazily line by line.
    pub fn read_objects(
        &self,
        file: &ObjectFile,
    ) -> Result<impl Iterator<Item = Result<Value, BundleError>>, BundleError> {
        let path = self.dir.join(&file.path);
        let reader = BufReader::new(File::open(&path).map_err(io_err(&path))?);
        Ok(reader.lines().map(move |line| {
            let line = line.map_err(io_err(&path))?;
            serde_json::from_str(&line).map_err(|e| BundleError::Invalid {
                path: path.clone(),
                problem: format!("object does not parse: {e}"),
                fix: "the backup is damaged",
            })
        }))
    }

    /// The object files of a section.
    pub fn files(&self, section: Section) -> impl Iterator<Item = &ObjectFile> {
        self.manifest
            .objects
            .iter()
            .filter(move |f| f.section == section)
    }

    /// Records, before the hand-over writes it, a file outside the bundle: what `path` holds now
    /// (`before`: content and permission bits, `None` when it does not exist) and what will be
    /// written (`after`, with its permission bits). Recorded first, so a crash between the two
    /// leaves a file that still holds `before`, which the rollback leaves alone. Recording the same
    /// path again (a resumed run) keeps the first `before` and replaces `after`.
    pub fn record_write(
        &mut self,
        path: &Path,
        before: Option<(&[u8], u32)>,
        after: (&[u8], u32),
    ) -> Result<(), BundleError> {
        let written_dir = self.dir.join(WRITTEN_DIR);
        make_private_dir(&written_dir)?;
        let mut manifest = self.manifest.clone();
        let index = match manifest.written.iter().position(|w| w.path == path) {
            Some(i) => i,
            None => {
                let n = manifest.written.len();
                let before = match before {
                    Some((bytes, mode)) => {
                        Some(self.write_copy(&format!("{n}.before"), bytes, mode)?)
                    }
                    None => None,
                };
                manifest.written.push(WrittenFile {
                    path: path.to_owned(),
                    before,
                    after: FileCopy {
                        copy: String::new(),
                        sha256: String::new(),
                        mode: after.1,
                    },
                });
                n
            }
        };
        manifest.written[index].after =
            self.write_copy(&format!("{index}.after"), after.0, after.1)?;
        write_manifest(&self.dir, &manifest)?;
        self.manifest = manifest;
        Ok(())
    }

    /// Writes a private copy under `written/` (replacing an earlier one of the same name).
    fn write_copy(&self, name: &str, bytes: &[u8], mode: u32) -> Result<FileCopy, BundleError> {
        let rel = format!("{WRITTEN_DIR}/{name}");
        let path = self.dir.join(&rel);
        kubespray_config::files::write_private_atomic(&path, bytes).map_err(io_err(&path))?;
        Ok(FileCopy {
            copy: rel,
            sha256: hex(&Sha256::digest(bytes)),
            mode: mode & 0o7777,
        })
    }

    /// What a rollback would do to each file the hand-over wrote; refuses, with the diff of what
    /// changed since, when one holds neither what the hand-over wrote nor what it held before
    /// (someone edited it since, or replaced it with a symlink). Reads only.
    pub fn check_written(&self) -> Result<Vec<(PathBuf, WrittenRestore)>, BundleError> {
        let mut plan = Vec::new();
        for w in &self.manifest.written {
            let current = match fs::symlink_metadata(&w.path) {
                Ok(meta) if meta.file_type().is_symlink() => Some(None),
                Ok(_) => Some(Some(fs::read(&w.path).map_err(io_err(&w.path))?)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(&w.path)(e)),
            };
            let sum = |bytes: &[u8]| hex(&Sha256::digest(bytes));
            let action = match (&current, &w.before) {
                (Some(Some(bytes)), _) if sum(bytes) == w.after.sha256 => match w.before {
                    Some(_) => WrittenRestore::Restore,
                    None => WrittenRestore::Remove,
                },
                (Some(Some(bytes)), Some(before)) if sum(bytes) == before.sha256 => {
                    WrittenRestore::Untouched
                }
                (None, None) => WrittenRestore::Untouched,
                _ => {
                    let after = self.read_copy(&w.after)?;
                    let now = match &current {
                        Some(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                        Some(None) => format!(
                            "(now a symlink to {})\n",
                            fs::read_link(&w.path).map_err(io_err(&w.path))?.display()
                        ),
                        None => String::new(),
                    };
                    return Err(BundleError::ChangedSinceHandover {
                        path: w.path.clone(),
                        before: w.before.as_ref().map(|b| self.dir.join(&b.copy)),
                        // Printed: the values file can hold keys.
                        diff: cilium_values::redact_yaml_lines(&kubespray_config::unified_diff(
                            &w.path,
                            &String::from_utf8_lossy(&after),
                            &now,
                        )),
                    });
                }
            };
            plan.push((w.path.clone(), action));
        }
        Ok(plan)
    }

    /// Puts back what each file the hand-over wrote held before (its permission bits too), or
    /// removes a file it created; each only while the file still holds what the hand-over wrote
    /// ([`Bundle::check_written`] runs first, for every file, so a refusal changes nothing).
    /// Writes are atomic and synced ([`kubespray_config::files::write_atomic`]). Returns the
    /// files restored or removed.
    pub fn restore_written(&self) -> Result<Vec<(PathBuf, WrittenRestore)>, BundleError> {
        let plan = self.check_written()?;
        let mut done = Vec::new();
        for (w, (path, action)) in self.manifest.written.iter().zip(plan) {
            match (&action, &w.before) {
                (WrittenRestore::Restore, Some(before)) => {
                    let content = self.read_copy(before)?;
                    kubespray_config::files::write_atomic(path.as_path(), &content, before.mode)
                        .map_err(io_err(&path))?;
                }
                (WrittenRestore::Remove, _) => {
                    fs::remove_file(&path).map_err(io_err(&path))?;
                    let dir = kubespray_config::files::parent_dir(&path);
                    sync_dir(&dir).map_err(io_err(&dir))?;
                }
                _ => continue,
            }
            done.push((path, action));
        }
        Ok(done)
    }

    /// A copy under `written/`, checked against its SHA-256.
    fn read_copy(&self, copy: &FileCopy) -> Result<Vec<u8>, BundleError> {
        let path = self.dir.join(&copy.copy);
        let content = fs::read(&path).map_err(io_err(&path))?;
        if hex(&Sha256::digest(&content)) != copy.sha256 {
            return Err(BundleError::Invalid {
                path,
                problem: "checksum differs from the manifest".into(),
                fix: "the bundle is damaged; restore the file the hand-over wrote by hand",
            });
        }
        Ok(content)
    }
}

/// Lists all objects of `resource` page by page straight into one file.
#[allow(clippy::too_many_arguments)]
async fn write_listed(
    dir: &Path,
    section: Section,
    api: &Api<DynamicObject>,
    resource: &ApiResource,
    namespaced: bool,
    label_selector: Option<&str>,
    page_size: u32,
    keep: impl Fn(&DynamicObject) -> bool,
) -> Result<ObjectFile, BundleError> {
    let types = TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    };
    let mut writer = ObjectFileWriter::create(dir, section, &resource.api_version, &resource.kind)?;
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(page_size);
        if let Some(selector) = label_selector {
            params = params.labels(selector);
        }
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api.list(&params).await.map_err(|source| BundleError::Api {
            what: format!("{} (list)", resource.plural),
            source,
        })?;
        for item in page.items {
            if keep(&item) {
                writer.write(item, &types)?;
            }
        }
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    writer.finish(section, resource, namespaced)
}

struct HashingReader<R: Read> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_file(path: &Path) -> Result<Vec<u8>, BundleError> {
    let mut reader = HashingReader {
        inner: File::open(path).map_err(io_err(path))?,
        hasher: Sha256::new(),
    };
    io::copy(&mut reader, &mut io::sink()).map_err(io_err(path))?;
    Ok(reader.hasher.finalize().to_vec())
}

fn make_private_dir(path: &Path) -> Result<(), BundleError> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
        Err(e) => {
            return Err(BundleError::Io {
                path: path.to_owned(),
                source: e,
            });
        }
    }
    // The umask may have removed bits we want, never added any; set them exactly.
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err(path))
}

fn create_private_file(path: &Path) -> Result<File, BundleError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    Ok(file)
}

/// Creates the bundle directory, or clears an incomplete backup from it (keeping the journal).
fn prepare_dir(dir: &Path) -> Result<(), BundleError> {
    if dir.exists() {
        let entries = fs::read_dir(dir).map_err(io_err(dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if ![
                JOURNAL_FILE,
                MANIFEST_FILE,
                OBJECTS_DIR,
                INVENTORY_DIR,
                ETCD_DIR,
                WRITTEN_DIR,
            ]
            .contains(&name.as_str())
                && !name.starts_with(".manifest")
            {
                return Err(BundleError::NotABundle {
                    path: dir.to_owned(),
                    found: name,
                });
            }
        }
        // A finished backup is the state before the hand-over: it is never overwritten. It is
        // finished when the journal says so, or, without a journal, when its manifest exists.
        let finished = match Journal::open(dir) {
            Ok(journal) => journal.state_of(Step::Backup) == Some(StepState::Done),
            Err(JournalError::Missing(_)) => dir.join(MANIFEST_FILE).exists(),
            Err(e) => {
                return Err(BundleError::Invalid {
                    path: dir.join(JOURNAL_FILE),
                    problem: e.to_string(),
                    fix: "choose a new bundle directory",
                });
            }
        };
        if finished {
            return Err(BundleError::Invalid {
                path: dir.to_owned(),
                problem: "holds a finished backup (the state before the hand-over)".into(),
                fix: "it is never overwritten: resume with it, roll back with it, or choose a new bundle directory",
            });
        }
        // Only our own sub-directories and files of an earlier, unfinished backup are removed.
        for sub in [OBJECTS_DIR, INVENTORY_DIR, ETCD_DIR, WRITTEN_DIR] {
            let p = dir.join(sub);
            if p.exists() {
                fs::remove_dir_all(&p).map_err(io_err(&p))?;
            }
        }
        let m = dir.join(MANIFEST_FILE);
        if m.exists() {
            fs::remove_file(&m).map_err(io_err(&m))?;
        }
    }
    make_private_dir(dir)?;
    make_private_dir(&dir.join(OBJECTS_DIR))?;
    make_private_dir(&dir.join(INVENTORY_DIR))
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), BundleError> {
    let tmp = dir.join(".manifest.json.tmp");
    let path = dir.join(MANIFEST_FILE);
    let text = serde_json::to_vec_pretty(manifest).map_err(|e| BundleError::Io {
        path: path.clone(),
        source: io::Error::other(e),
    })?;
    let _ = fs::remove_file(&tmp);
    let mut file = create_private_file(&tmp)?;
    file.write_all(&text).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    for d in [
        dir.join(OBJECTS_DIR),
        dir.join(INVENTORY_DIR),
        dir.to_owned(),
    ] {
        sync_dir(&d).map_err(io_err(&d))?;
    }
    Ok(())
}

fn copy_inventory(
    dir: &Path,
    n: usize,
    source: &Path,
    out: &mut Vec<InventoryFile>,
) -> Result<(), BundleError> {
    let source = fs::canonicalize(source).map_err(|e| BundleError::Io {
        path: source.to_owned(),
        source: io::Error::new(e.kind(), format!("inventory path: {e}")),
    })?;
    let base = dir.join(INVENTORY_DIR).join(n.to_string());
    make_private_dir(&base)?;
    let mut stack = vec![(source.clone(), PathBuf::new())];
    if source.is_file() {
        stack = vec![(
            source.clone(),
            PathBuf::from(source.file_name().unwrap_or_default()),
        )];
    }
    while let Some((path, rel)) = stack.pop() {
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if meta.is_dir() {
            make_private_dir(&base.join(&rel))?;
            let mut children: Vec<_> = fs::read_dir(&path)
                .map_err(io_err(&path))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(io_err(&path))?;
            children.sort_by_key(|e| e.file_name());
            for child in children {
                stack.push((child.path(), rel.join(child.file_name())));
            }
        } else if meta.is_file() {
            let target = base.join(&rel);
            let content = fs::read(&path).map_err(io_err(&path))?;
            let mut file = create_private_file(&target)?;
            file.write_all(&content).map_err(io_err(&target))?;
            file.sync_all().map_err(io_err(&target))?;
            out.push(InventoryFile {
                original: path.clone(),
                path: format!("{INVENTORY_DIR}/{n}/{}", rel.display()),
                mode: meta.permissions().mode() & 0o7777,
                sha256: hex(&Sha256::digest(&content)),
            });
        }
        // Symlinks and special files are not inventory content; the link targets are copied
        // when they are named themselves.
    }
    Ok(())
}

fn check_mode(path: &Path, want: u32) -> Result<(), BundleError> {
    let mode = fs::metadata(path)
        .map_err(io_err(path))?
        .permissions()
        .mode()
        & 0o777;
    if mode != want {
        return Err(BundleError::Invalid {
            path: path.to_owned(),
            problem: format!("mode {mode:o}, expected {want:o} (the bundle holds Secrets)"),
            fix: if want == 0o700 {
                "run `chmod 700` on it"
            } else {
                "run `chmod 600` on it"
            },
        });
    }
    Ok(())
}

/// A file the manifest lists with its checksum: private (0600) and unchanged since the backup.
fn check_private_file(path: &Path, sha256: &str, fix: &'static str) -> Result<(), BundleError> {
    check_mode(path, 0o600)?;
    let sum = hex(&sha256_file(path)?);
    if sum != sha256 {
        return Err(BundleError::Invalid {
            path: path.to_owned(),
            problem: format!("SHA-256 {sum} differs from the manifest's {sha256}"),
            fix,
        });
    }
    Ok(())
}

/// Every file under `root` must be listed; directories must be 0700.
fn check_tree(root: &Path, listed: &[PathBuf]) -> Result<(), BundleError> {
    if !root.exists() {
        return Ok(());
    }
    check_mode(root, 0o700)?;
    for entry in fs::read_dir(root).map_err(io_err(root))? {
        let path = entry.map_err(io_err(root))?.path();
        if path.is_dir() {
            check_tree(&path, listed)?;
        } else if !listed.contains(&path) {
            return Err(BundleError::Invalid {
                path,
                problem: "file not listed in the manifest".into(),
                fix: "remove it, or take a new backup",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ClusterIdentity {
        ClusterIdentity {
            api_server: "https://127.0.0.1:6443".into(),
            kube_system_uid: "u".into(),
        }
    }

    /// Writes a bundle by hand (the same writer the backup uses) from recorded objects.
    fn recorded_bundle(dir: &Path, inventory: &Path) -> Bundle {
        prepare_dir(dir).unwrap();
        let ds: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cilium", "namespace": "kube-system", "uid": "u1",
                         "managedFields": [{"manager": "kubectl-client-side-apply"}]},
            "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}}}
        }))
        .unwrap();
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "DaemonSet"),
            "daemonsets",
        );
        let types = TypeMeta {
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
        };
        let mut w =
            ObjectFileWriter::create(dir, Section::Handover, "apps/v1", "DaemonSet").unwrap();
        w.write(ds, &types).unwrap();
        let file = w.finish(Section::Handover, &resource, true).unwrap();
        let mut manifest = Manifest {
            format: 1,
            created: 0,
            cluster: identity(),
            objects: vec![file],
            absent: vec![],
            inventory: vec![],
            etcd_snapshot: None,
            written: vec![],
        };
        copy_inventory(dir, 0, inventory, &mut manifest.inventory).unwrap();
        write_manifest(dir, &manifest).unwrap();
        Bundle::open(dir).unwrap()
    }

    fn inventory_dir() -> tempfile::TempDir {
        let inv = tempfile::tempdir().unwrap();
        fs::create_dir_all(inv.path().join("group_vars/k8s_cluster")).unwrap();
        fs::write(inv.path().join("hosts.yaml"), "all: {}\n").unwrap();
        fs::write(
            inv.path().join("group_vars/k8s_cluster/k8s-net-cilium.yml"),
            "cilium_version: v1.15.9\n",
        )
        .unwrap();
        inv
    }

    #[test]
    fn a_written_bundle_verifies_and_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let inv = inventory_dir();
        let dir = tmp.path().join("bundle");
        let bundle = recorded_bundle(&dir, inv.path());
        let report = bundle.verify().unwrap();
        assert_eq!(report.objects.get("handover"), Some(&1));
        assert_eq!(report.inventory_files, 2);
        let objects: Vec<Value> = bundle
            .read_objects(&bundle.manifest().objects[0])
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(objects[0]["kind"], "DaemonSet");
        assert!(objects[0]["metadata"].get("managedFields").is_none());
        // Every file 0600, every directory 0700.
        let mut stack = vec![dir.clone()];
        while let Some(p) = stack.pop() {
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            if p.is_dir() {
                assert_eq!(mode, 0o700, "{}", p.display());
                stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else {
                assert_eq!(mode, 0o600, "{}", p.display());
            }
        }
    }

    #[test]
    fn a_corrupted_etcd_stream_leaves_no_partial_file_and_a_whole_one_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let inv = inventory_dir();
        let dir = tmp.path().join("bundle");
        let mut bundle = recorded_bundle(&dir, inv.path());
        let path = dir.join(ETCD_SNAPSHOT_FILE);
        // Three bbolt pages, the magic in the first meta page.
        let mut db: Vec<u8> = (0..3 * ETCD_SNAPSHOT_HEAD_BYTES)
            .map(|i| (i % 251) as u8)
            .collect();
        db[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
        let sum = hex(&Sha256::digest(&db));
        // Written in uneven chunks, as a stream arrives.
        let stream = |writer: &mut EtcdSnapshotWriter| {
            for chunk in db.chunks(1000) {
                writer.write_all(chunk).unwrap();
            }
        };

        let mut writer = bundle.etcd_snapshot_writer().unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        stream(&mut writer);
        assert_eq!(writer.head(), &db[..ETCD_SNAPSHOT_HEAD_BYTES]);
        assert_eq!(writer.bytes(), db.len() as u64);
        assert_eq!(writer.sha256(), sum);
        let wrong = "0".repeat(64);
        let err = crate::etcd::check_streamed("node1", &writer, &wrong)
            .unwrap_err()
            .to_string();
        assert!(err.contains("differs") && err.contains("node1"), "{err}");
        // What snapshot_into does on a failed check: the writer goes, and the file with it.
        drop(writer);
        assert!(!path.exists() && !dir.join(ETCD_DIR).exists());
        assert!(bundle.manifest().etcd_snapshot.is_none());
        assert!(
            Bundle::open(&dir)
                .unwrap()
                .manifest()
                .etcd_snapshot
                .is_none()
        );
        bundle.verify().unwrap();

        // The same bundle then takes a whole stream.
        let mut writer = bundle.etcd_snapshot_writer().unwrap();
        stream(&mut writer);
        crate::etcd::check_streamed("node1", &writer, &sum).unwrap();
        let file = bundle
            .finish_etcd_snapshot(writer, "node1", "https://10.0.0.1:2379")
            .unwrap();
        assert_eq!(
            (file.bytes, file.sha256.as_str()),
            (db.len() as u64, sum.as_str())
        );
        assert_eq!(fs::read(&path).unwrap(), db);
        let reopened = Bundle::open(&dir).unwrap();
        assert_eq!(reopened.manifest().etcd_snapshot.as_ref(), Some(&file));
        assert_eq!(
            reopened.verify().unwrap().etcd_snapshot_bytes,
            Some(db.len() as u64)
        );
    }

    #[test]
    fn an_etcd_snapshot_is_private_listed_checked_and_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let inv = inventory_dir();
        let dir = tmp.path().join("bundle");
        let mut bundle = recorded_bundle(&dir, inv.path());
        let file = bundle
            .add_etcd_snapshot(b"snapshot bytes", "node1", "https://10.0.0.1:2379")
            .unwrap();
        assert_eq!(file.bytes, 14);
        let path = dir.join(ETCD_SNAPSHOT_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Recorded in the manifest on disk, and checked by verify.
        let reopened = Bundle::open(&dir).unwrap();
        assert_eq!(reopened.manifest().etcd_snapshot.as_ref(), Some(&file));
        assert_eq!(reopened.verify().unwrap().etcd_snapshot_bytes, Some(14));
        let again = bundle
            .add_etcd_snapshot(b"other", "node1", "https://10.0.0.1:2379")
            .unwrap_err()
            .to_string();
        assert!(again.contains("already holds an etcd snapshot"), "{again}");
        assert_eq!(fs::read(&path).unwrap(), b"snapshot bytes");
        fs::write(&path, b"snapshot bytez").unwrap();
        let err = reopened.verify().unwrap_err().to_string();
        assert!(
            err.contains("snapshot.db") && err.contains("SHA-256"),
            "{err}"
        );
        fs::write(dir.join("etcd/stray.db"), b"").unwrap();
        fs::write(&path, b"snapshot bytes").unwrap();
        let err = reopened.verify().unwrap_err().to_string();
        assert!(
            err.contains("stray.db") && err.contains("not listed"),
            "{err}"
        );
    }

    #[test]
    fn verify_catches_tampering_loose_permissions_and_strays() {
        let tmp = tempfile::tempdir().unwrap();
        let inv = inventory_dir();
        let dir = tmp.path().join("bundle");
        let bundle = recorded_bundle(&dir, inv.path());
        let objects = dir.join(&bundle.manifest().objects[0].path);

        let original = fs::read(&objects).unwrap();
        fs::write(
            &objects,
            String::from_utf8(original.clone())
                .unwrap()
                .replace("u1", "u2"),
        )
        .unwrap();
        let err = bundle.verify().unwrap_err().to_string();
        assert!(
            err.contains("SHA-256") && err.contains("DaemonSet.jsonl"),
            "{err}"
        );

        fs::write(&objects, b"{not json}\n").unwrap();
        let err = bundle.verify().unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("not a JSON object"),
            "{err}"
        );

        fs::write(&objects, &original).unwrap();
        bundle.verify().unwrap();
        fs::set_permissions(&objects, fs::Permissions::from_mode(0o644)).unwrap();
        let err = bundle.verify().unwrap_err().to_string();
        assert!(
            err.contains("mode 644") && err.contains("chmod 600"),
            "{err}"
        );
        fs::set_permissions(&objects, fs::Permissions::from_mode(0o600)).unwrap();

        let inv_copy = dir.join(&bundle.manifest().inventory[0].path);
        fs::write(&inv_copy, "changed").unwrap();
        assert!(
            bundle
                .verify()
                .unwrap_err()
                .to_string()
                .contains("inventory copy changed")
        );
        fs::write(
            &inv_copy,
            fs::read(&bundle.manifest().inventory[0].original).unwrap(),
        )
        .unwrap();
        bundle.verify().unwrap();

        create_private_file(&dir.join("objects/handover/stray.jsonl")).unwrap();
        assert!(
            bundle
                .verify()
                .unwrap_err()
                .to_string()
                .contains("not listed")
        );
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// A hand-over as `flow` makes it: one inventory file edited (mode 0640), the values file
    /// created; each recorded before it is written.
    fn handed_over(bundle: &mut Bundle, inv: &Path) -> (PathBuf, PathBuf) {
        let vars = inv.join("group_vars/k8s_cluster/k8s-net-cilium.yml");
        fs::set_permissions(&vars, fs::Permissions::from_mode(0o640)).unwrap();
        let before = fs::read(&vars).unwrap();
        let after = b"cilium_version: v1.15.9\nkube_network_plugin: cni\n";
        bundle
            .record_write(&vars, Some((&before, 0o640)), (after, 0o640))
            .unwrap();
        kubespray_config::files::write_atomic(&vars, after, 0o640).unwrap();
        let values = inv.join("cilium-values.yaml");
        let yaml = b"tls:\n  ca:\n    key: c2VjcmV0\n";
        bundle.record_write(&values, None, (yaml, 0o600)).unwrap();
        kubespray_config::files::write_private_atomic(&values, yaml).unwrap();
        (vars, values)
    }

    #[test]
    fn only_the_files_the_handover_wrote_are_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let inv = inventory_dir();
        let mut bundle = recorded_bundle(&tmp.path().join("b"), inv.path());
        let (vars, values) = handed_over(&mut bundle, inv.path());
        assert_eq!(mode_of(&values), 0o600, "the values file can hold keys");
        // Recorded in the manifest on disk, and checked by verify.
        let reopened = Bundle::open(bundle.dir()).unwrap();
        assert_eq!(reopened.manifest().written.len(), 2);
        reopened.verify().unwrap();
        // The operator changes a file the hand-over never wrote: the rollback leaves it alone
        // (the backup's copy of it is older than the operator's change).
        let hosts = inv.path().join("hosts.yaml");
        fs::write(&hosts, "all: {hosts: {node1: {}}}\n").unwrap();
        // A predictable temporary name pointing elsewhere is never written through.
        let victim = tmp.path().join("victim");
        fs::write(&victim, "mine").unwrap();
        std::os::unix::fs::symlink(&victim, vars.with_extension("cilium-migrate-restore")).unwrap();

        let done = reopened.restore_written().unwrap();
        assert_eq!(
            done,
            vec![
                (vars.clone(), WrittenRestore::Restore),
                (values.clone(), WrittenRestore::Remove)
            ]
        );
        assert_eq!(
            fs::read_to_string(&vars).unwrap(),
            "cilium_version: v1.15.9\n"
        );
        assert_eq!(mode_of(&vars), 0o640);
        assert!(!values.exists());
        assert_eq!(
            fs::read_to_string(&hosts).unwrap(),
            "all: {hosts: {node1: {}}}\n"
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), "mine");
        // Run again: everything already holds what it held before.
        assert!(reopened.restore_written().unwrap().is_empty());
        assert!(
            reopened
                .check_written()
                .unwrap()
                .iter()
                .all(|(_, a)| *a == WrittenRestore::Untouched)
        );
    }

    #[test]
    fn a_file_changed_since_the_handover_stops_the_rollback_with_the_diff() {
        let tmp = tempfile::tempdir().unwrap();
        let inv = inventory_dir();
        let mut bundle = recorded_bundle(&tmp.path().join("b"), inv.path());
        let (vars, values) = handed_over(&mut bundle, inv.path());
        // The diff of the values file never shows key material.
        let yaml = fs::read(&values).unwrap();
        fs::write(&values, "tls:\n  ca:\n    key: c2VjcmV0\n    cert: bmV3\n").unwrap();
        let err = bundle.check_written().unwrap_err().to_string();
        assert!(
            err.contains("cilium-values.yaml")
                && err.contains("+    cert: <redacted>")
                && !err.contains("c2VjcmV0")
                && !err.contains("bmV3"),
            "{err}"
        );
        fs::write(&values, yaml).unwrap();
        let edited = "cilium_version: v1.15.9\nkube_network_plugin: cni\ncilium_debug: true\n";
        fs::write(&vars, edited).unwrap();
        let err = bundle.restore_written().unwrap_err();
        assert!(
            matches!(err, BundleError::ChangedSinceHandover { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("k8s-net-cilium.yml")
                && text.contains("+cilium_debug: true")
                && text.contains("nothing was changed")
                && text.contains("written/0.before"),
            "{text}"
        );
        // Checked for every file before any is written: the values file is still there.
        assert_eq!(fs::read_to_string(&vars).unwrap(), edited);
        assert!(values.exists());

        // A symlink put where the hand-over wrote a file is not written through either.
        fs::write(&vars, "cilium_version: v1.15.9\nkube_network_plugin: cni\n").unwrap();
        fs::remove_file(&values).unwrap();
        std::os::unix::fs::symlink(&vars, &values).unwrap();
        let err = bundle.check_written().unwrap_err().to_string();
        assert!(
            err.contains("cilium-values.yaml") && err.contains("now a symlink"),
            "{err}"
        );
    }

    #[test]
    fn a_resumed_write_keeps_the_first_before_and_copies_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let inv = inventory_dir();
        let mut bundle = recorded_bundle(&tmp.path().join("b"), inv.path());
        let (_, values) = handed_over(&mut bundle, inv.path());
        // The step runs again after a crash: the file now holds the first run's values.
        let first = fs::read(&values).unwrap();
        bundle
            .record_write(&values, Some((&first, 0o600)), (b"second\n", 0o600))
            .unwrap();
        kubespray_config::files::write_private_atomic(&values, b"second\n").unwrap();
        assert_eq!(bundle.manifest().written.len(), 2);
        assert!(bundle.manifest().written[1].before.is_none());
        bundle.verify().unwrap();
        let copy = bundle.dir().join(&bundle.manifest().written[1].after.copy);
        fs::write(&copy, "tampered").unwrap();
        let err = bundle.verify().unwrap_err().to_string();
        assert!(
            err.contains("written/1.after") && err.contains("SHA-256"),
            "{err}"
        );
        fs::write(&copy, "second\n").unwrap();
        assert_eq!(
            bundle.restore_written().unwrap(),
            vec![
                (
                    inv.path().join("group_vars/k8s_cluster/k8s-net-cilium.yml"),
                    WrittenRestore::Restore
                ),
                (values.clone(), WrittenRestore::Remove)
            ]
        );
        assert!(!values.exists());
    }

    #[test]
    fn a_finished_backup_is_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let inv = inventory_dir();
        let dir = tmp.path().join("bundle");
        let mut journal =
            Journal::create(&dir, identity(), crate::journal::Strategy::Adopt).unwrap();
        journal.start(Step::Backup).unwrap();
        // Cut short after the manifest, before `done`: a re-run may rewrite it.
        recorded_bundle(&dir, inv.path());
        prepare_dir(&dir).unwrap();
        assert!(!dir.join(MANIFEST_FILE).exists());
        recorded_bundle(&dir, inv.path());
        journal.done(Step::Backup).unwrap();
        let err = prepare_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("never overwritten"), "{err}");
        Bundle::open(&dir).unwrap().verify().unwrap();
        // Without a journal, a manifest alone marks a finished backup.
        let standalone = tmp.path().join("standalone");
        recorded_bundle(&standalone, inv.path());
        assert!(prepare_dir(&standalone).is_err());
    }

    #[test]
    fn a_foreign_directory_is_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
        let err = prepare_dir(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("notes.txt") && err.contains("empty or new directory"),
            "{err}"
        );
        assert!(tmp.path().join("notes.txt").exists());
    }
}
