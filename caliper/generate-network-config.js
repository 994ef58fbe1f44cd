'use strict';
// Writes a Caliper network configuration (v2 format, peer-gateway connector) and one connection profile
// per bank from the network tool's profile.json, so Caliper drives the same network as `make bench`.
//
//   node generate-network-config.js [path/to/profile.json] [output dir]
//
// Every bank's client user (User1) becomes a Caliper identity named "User1"; the peers are dialled
// with server-side TLS (Caliper 0.6's peer-gateway connector does not do mutual TLS).

const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

function main() {
    const profilePath = path.resolve(process.argv[2] || path.join(__dirname, '..', '.state', 'bench', 'profile.json'));
    const outDir = path.resolve(process.argv[3] || path.join(__dirname, 'networks', 'generated'));
    if (!fs.existsSync(profilePath)) {
        console.error(`error: ${profilePath} does not exist (start the network first: python -m network up)`);
        process.exit(1);
    }
    const profile = JSON.parse(fs.readFileSync(profilePath, 'utf8'));
    const banks = Object.entries(profile.orgs || {}).filter(([, org]) => (org.kind || 'bank') === 'bank');
    if (banks.length === 0) {
        console.error(`error: ${profilePath} lists no bank organisations`);
        process.exit(1);
    }
    fs.mkdirSync(outDir, { recursive: true });
    const organizations = [];
    for (const [mspId, org] of banks) {
        const peerName = org.peer.host_override || `peer0.${org.name.toLowerCase()}`;
        const connectionProfile = {
            name: `${org.name}-connection`,
            version: '1.0.0',
            client: { organization: org.name },
            organizations: { [org.name]: { mspid: mspId, peers: [peerName] } },
            peers: {
                [peerName]: {
                    url: `grpcs://${org.peer.address}`,
                    tlsCACerts: { path: org.peer.tls_ca },
                    grpcOptions: { 'ssl-target-name-override': peerName },
                },
            },
        };
        const connectionFile = path.join(outDir, `connection-${mspId}.yaml`);
        fs.writeFileSync(connectionFile, YAML.stringify(connectionProfile));
        organizations.push({
            mspid: mspId,
            identities: {
                certificates: [{
                    name: 'User1',
                    clientPrivateKey: { path: org.client.key },
                    clientSignedCert: { path: org.client.cert },
                }],
            },
            connectionProfile: { path: connectionFile, discover: true },
        });
    }
    const contracts = Object.keys(profile.chaincodes || {}).map((id) => ({ id }));
    const network = {
        name: 'deposit-token',
        version: '2.0.0',
        caliper: { blockchain: 'fabric', sutOptions: { mutualTls: false } },
        channels: [{ channelName: profile.channel || 'tokens', contracts }],
        organizations,
    };
    const networkFile = path.join(outDir, 'network.yaml');
    fs.writeFileSync(networkFile, YAML.stringify(network));
    fs.writeFileSync(path.join(outDir, 'banks.json'), JSON.stringify(banks.map(([mspId, org]) => ({
        mspId, jurisdiction: org.jurisdiction || 'US',
    })), null, 2));
    console.log(`wrote ${networkFile} (${banks.length} banks, contracts: ${contracts.map((c) => c.id).join(', ')})`);
}

main();
