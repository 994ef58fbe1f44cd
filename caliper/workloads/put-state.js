'use strict';
// conformance PutState of a unique key: one blind write, the same ceiling transaction `make bench` measures.

const { WorkloadModuleBase } = require('@hyperledger/caliper-core');
const banks = require('../networks/generated/banks.json');

class PutStateWorkload extends WorkloadModuleBase {
    constructor() {
        super();
        this.sequence = 0;
    }

    async submitTransaction() {
        this.sequence += 1;
        const bank = banks[(this.workerIndex + this.sequence) % banks.length];
        return this.sutAdapter.sendRequests({
            contractId: 'conformance',
            contractFunction: 'PutState',
            contractArguments: [`caliper-${process.pid}-${this.workerIndex}-${this.roundIndex}-${this.sequence}`, 'v'],
            invokerMspId: bank.mspId,
            invokerIdentity: 'User1',
            readOnly: false,
        });
    }
}

function createWorkloadModule() {
    return new PutStateWorkload();
}

module.exports.createWorkloadModule = createWorkloadModule;
