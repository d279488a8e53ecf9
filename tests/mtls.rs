//! Certificate-bound tokens (RFC 8705) behind a real rustls server that asks for client
//! certificates: the server puts the client's certificate into each request as a
//! `ClientCertificate`, and the layer accepts a token with `cnf.x5t#S256` only with that
//! certificate.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tower::Layer as _;
use tower_jwt_auth::{AuthError, ClientCertificate, Issuer, JwtAuthLayer, KeySource};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

struct Pki {
    ca: CertificateDer<'static>,
    server: (CertificateDer<'static>, KeyPair),
    alice: (CertificateDer<'static>, KeyPair),
    mallory: (CertificateDer<'static>, KeyPair),
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.der().clone(), key)
    };
    Pki {
        ca: ca.der().clone(),
        server: leaf("localhost"),
        alice: leaf("alice"),
        mallory: leaf("mallory"),
    }
}

fn private(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(key.serialize_der().into())
}

/// The snippet a service needs: a rustls server that requires client certificates and hands
/// each connection's certificate to the layer as a `ClientCertificate` extension.
async fn serve(pki: &Pki, app: Router) -> SocketAddr {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.0.clone()], private(&pki.server.1))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                // The certificate the client proved it holds the key of, for every request on
                // this connection.
                let certificate = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|der| ClientCertificate::new(der.to_vec()));
                let service =
                    tower::util::MapRequestLayer::new(move |mut request: Request<Incoming>| {
                        if let Some(certificate) = &certificate {
                            request.extensions_mut().insert(certificate.clone());
                        }
                        request
                    })
                    .layer(app);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                    .await;
            });
        }
    });
    addr
}

/// `GET /whoami` over TLS with `client`'s certificate and `token`.
async fn get_over_tls(
    pki: &Pki,
    addr: SocketAddr,
    client: &(CertificateDer<'static>, KeyPair),
    token: &str,
) -> (StatusCode, Option<String>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![client.0.clone()], private(&client.1))
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("/whoami")
        .header(header::HOST, "localhost")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let error = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let _ = response.into_body().collect().await;
    (status, error)
}

fn x5t(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

#[tokio::test]
async fn a_certificate_bound_token_passes_only_over_the_bound_clients_connection() {
    let pki = pki();
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(
            Issuer::new(ISSUER)
                .audience(AUDIENCE)
                .key(KeySource::shared_secret(SECRET)),
        )
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/whoami",
            get(|token: tower_jwt_auth::VerifiedToken| async move {
                token.confirmation().x5t_s256().unwrap_or("-").to_owned()
            }),
        )
        .layer(layer);
    let addr = serve(&pki, app).await;

    let bound = hs256(
        SECRET,
        None,
        &claims_with(json!({"cnf": {"x5t#S256": x5t(&pki.alice.0)}})),
    );
    let (status, _) = get_over_tls(&pki, addr, &pki.alice, &bound).await;
    assert_eq!(status, StatusCode::OK);
    // Mallory stole the token; her own (valid) certificate is not the bound one.
    let (status, challenge) = get_over_tls(&pki, addr, &pki.mallory, &bound).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let expected = AuthError::TokenBinding("client certificate does not match the token");
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.contains(&expected.description().into_owned())),
        "{challenge:?}"
    );
    // An unbound token works for either.
    let plain = hs256(SECRET, None, &valid_claims());
    assert_eq!(
        get_over_tls(&pki, addr, &pki.mallory, &plain).await.0,
        StatusCode::OK
    );
}
