//! Certificates made at test time: a private CA, server and client certificates
//! it signs (valid, expired, or for another host name), and a second CA nobody
//! trusts. Files are PEM (keys PKCS#8, ECDSA P-256), written to a temporary
//! directory removed on drop, so real servers (`redis-server --tls-port`,
//! PostgreSQL with `ssl=on`) and the stores under test read them as in production.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::fs::TempDir;

/// A certificate and its private key, as files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A private certificate authority and the files it made.
pub struct Pki {
    dir: TempDir,
    name: String,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA named `name` (unique within one test binary); its certificate is
    /// [`Pki::ca_file`].
    pub fn new(name: &str) -> Self {
        let dir = TempDir::new(&format!("pki-{name}"));
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = distinguished(&format!("nex-session test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        valid_around_now(&mut params);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.0.join("ca.pem"), ca.pem()).unwrap();
        Self { dir, name: name.to_owned(), ca }
    }

    /// The CA's certificate (what a client trusts: `sslrootcert=`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.0.join("ca.pem")
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid now.
    /// It may authenticate clients too: Redis Cluster nodes present it to each
    /// other on the cluster bus, which always asks for a client certificate.
    pub fn server(&self, file: &str, names: &[&str]) -> CertFiles {
        self.issue(
            file,
            names,
            &[ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            valid_around_now,
        )
    }

    /// A server certificate for `names` that expired yesterday.
    pub fn expired_server(&self, file: &str, names: &[&str]) -> CertFiles {
        self.issue(file, names, &[ExtendedKeyUsagePurpose::ServerAuth], |params| {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        })
    }

    /// A client certificate (mutual TLS) whose common name is `user`.
    pub fn client(&self, file: &str, user: &str) -> CertFiles {
        self.issue_named(file, &[], user, &[ExtendedKeyUsagePurpose::ClientAuth], valid_around_now)
    }

    fn issue(
        &self,
        file: &str,
        names: &[&str],
        usage: &[ExtendedKeyUsagePurpose],
        validity: impl FnOnce(&mut CertificateParams),
    ) -> CertFiles {
        let common = names.first().copied().unwrap_or("server");
        self.issue_named(file, names, common, usage, validity)
    }

    fn issue_named(
        &self,
        file: &str,
        names: &[&str],
        common_name: &str,
        usage: &[ExtendedKeyUsagePurpose],
        validity: impl FnOnce(&mut CertificateParams),
    ) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = distinguished(common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = usage.to_vec();
        validity(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let files =
            CertFiles { cert: self.dir.0.join(format!("{file}.pem")), key: self.dir.0.join(format!("{file}.key")) };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        set_private(&files.key);
        files
    }

    /// The CA's name, as given to [`Pki::new`].
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Servers refuse private keys others can read (PostgreSQL does).
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn distinguished(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn valid_around_now(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // A day back, so a clock a little behind still accepts it.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
}
