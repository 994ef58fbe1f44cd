'use strict';
// deposit_token Transfer between two accounts of one bank, customer data in the transient map.
//
// Each worker opens `payersPerWorker` payers and one payee at one bank (workers are spread over the
// banks), issues to every payer and folds the issued credit into its balance head (the same preload as
// `make bench`), then transfers from the payers in turn. A payer is debited again only after a full
// cycle, so at the configured rates no two debits of one account are in flight (no MVCC conflicts).

const { WorkloadModuleBase } = require('@hyperledger/caliper-core');
const banks = require('../networks/generated/banks.json');

const CURRENCY = 'USD';

class TransferWorkload extends WorkloadModuleBase {
    constructor() {
        super();
        this.sequence = 0;
        this.payers = [];
    }

    request(functionName, body, readOnly = false) {
        return this.sutAdapter.sendRequests({
            contractId: 'deposit_token',
            contractFunction: functionName,
            contractArguments: [],
            transientMap: { request: JSON.stringify(body) },
            invokerMspId: this.bank.mspId,
            invokerIdentity: 'User1',
            readOnly,
        });
    }

    async checked(functionName, body, readOnly = false) {
        const status = await this.request(functionName, body, readOnly);
        if (!status.IsCommitted() && !readOnly) {
            throw new Error(`${functionName} failed during preparation: ${status.GetErrMsg()}`);
        }
        return status;
    }

    async initializeWorkloadModule(workerIndex, totalWorkers, roundIndex, roundArguments, sutAdapter, sutContext) {
        await super.initializeWorkloadModule(workerIndex, totalWorkers, roundIndex, roundArguments, sutAdapter, sutContext);
        this.bank = banks[workerIndex % banks.length];
        const count = Number(roundArguments.payersPerWorker || 50);
        const run = `cal-${process.pid}-${roundIndex}-${workerIndex}`;
        const open = (accountId) => this.checked('OpenAccount', {
            account_id: accountId, holder: 'Caliper Customer', jurisdiction: this.bank.jurisdiction, kyc_ref: `kyc-${accountId}`,
        });
        this.payee = `${run}-payee`;
        await open(this.payee);
        for (let i = 0; i < count; i += 1) {
            this.payers.push(`${run}-payer${i}`);
        }
        await Promise.all(this.payers.map(open));
        await Promise.all(this.payers.map((accountId) => this.checked('Issue', {
            account_id: accountId, currency: CURRENCY, amount: 1000000000, deposit_ref: `dep-${accountId}`,
        })));
        await Promise.all(this.payers.map(async (accountId) => {
            const status = await this.request('GetAccount', { account_id: accountId }, true);
            const account = JSON.parse(Buffer.from(status.GetResult()).toString('utf8'));
            await this.checked('ConsolidateAccount', { account_id: accountId, pending_credits: account.pending_credits });
        }));
    }

    async submitTransaction() {
        this.sequence += 1;
        const payer = this.payers[this.sequence % this.payers.length];
        return this.request('Transfer', {
            from_account: payer,
            to_account: this.payee,
            currency: CURRENCY,
            amount: 100,
            transfer_id: `${payer}-t${this.sequence}`,
        });
    }
}

function createWorkloadModule() {
    return new TransferWorkload();
}

module.exports.createWorkloadModule = createWorkloadModule;
