--
-- PostgreSQL database dump
--

-- Dumped from database version 16.2
-- Dumped by pg_dump version 16.2

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: audit_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_log (
    seq bigint NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    subject text NOT NULL,
    details jsonb NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL
);


--
-- Name: audit_log_seq_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.audit_log_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_log_seq_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.audit_log_seq_seq OWNED BY public.audit_log.seq;


--
-- Name: contract_versions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.contract_versions (
    reference text NOT NULL,
    version text NOT NULL,
    document jsonb NOT NULL,
    loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: contracts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.contracts (
    reference text NOT NULL,
    creator_id text NOT NULL,
    version text NOT NULL,
    document jsonb NOT NULL,
    loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: creators; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.creators (
    creator_id text NOT NULL,
    name text NOT NULL
);


--
-- Name: event_file_loads; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.event_file_loads (
    sha256 text NOT NULL,
    file_name text NOT NULL,
    topic text NOT NULL,
    lines integer NOT NULL,
    produced integer NOT NULL,
    quarantined integer NOT NULL,
    loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: license_workflows; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.license_workflows (
    asset_id text NOT NULL,
    licensor text NOT NULL,
    expires_on date NOT NULL,
    action text NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    run_id text NOT NULL
);


--
-- Name: licenses; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.licenses (
    asset_id text NOT NULL,
    licensor text NOT NULL,
    expires_on date NOT NULL,
    on_expiry text NOT NULL
);


--
-- Name: payees; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payees (
    payee_id text NOT NULL,
    creator_id text NOT NULL,
    name text NOT NULL,
    kyc_status text NOT NULL,
    kyc_evidence text NOT NULL,
    payout_method text NOT NULL,
    currency text NOT NULL,
    iban text NOT NULL,
    bic text NOT NULL,
    threshold numeric NOT NULL,
    withholding_rate numeric NOT NULL
);


--
-- Name: payout_approvals; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payout_approvals (
    batch_id text NOT NULL,
    approver text NOT NULL,
    approved_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: payout_batches; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payout_batches (
    batch_id text NOT NULL,
    period text NOT NULL,
    currency text NOT NULL,
    total numeric NOT NULL,
    line_count integer NOT NULL,
    status text NOT NULL,
    created_by text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    exported_at timestamp with time zone,
    manifest_sha256 text,
    execution_date date
);


--
-- Name: payout_confirmations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payout_confirmations (
    file_key text NOT NULL,
    batch_id text NOT NULL,
    sha256 text NOT NULL,
    lines integer NOT NULL,
    posted_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: payout_holds; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payout_holds (
    period text NOT NULL,
    payee_id text NOT NULL,
    currency text NOT NULL,
    amount numeric NOT NULL,
    reason text NOT NULL,
    returned_period text NOT NULL
);


--
-- Name: payout_lines; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payout_lines (
    line_id text NOT NULL,
    batch_id text NOT NULL,
    payee_id text NOT NULL,
    amount numeric NOT NULL,
    currency text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    paid_on date,
    reason text DEFAULT ''::text NOT NULL,
    returned_period text
);


--
-- Name: period_fx_rates; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.period_fx_rates (
    period text NOT NULL,
    currency text NOT NULL,
    rate_to_reporting numeric NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: royalty_periods; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.royalty_periods (
    period text NOT NULL,
    status text DEFAULT 'open'::text NOT NULL,
    closed_at timestamp with time zone,
    closed_by text
);


--
-- Name: royalty_statement_totals; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.royalty_statement_totals (
    period text NOT NULL,
    payee_id text NOT NULL,
    currency text NOT NULL,
    earnings numeric NOT NULL,
    paid numeric NOT NULL,
    withheld numeric NOT NULL,
    carried_out numeric NOT NULL,
    carried_reason text NOT NULL,
    computed_at timestamp with time zone DEFAULT now() NOT NULL,
    held numeric DEFAULT 0 NOT NULL,
    held_reason text DEFAULT ''::text NOT NULL
);


--
-- Name: audit_log seq; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log ALTER COLUMN seq SET DEFAULT nextval('public.audit_log_seq_seq'::regclass);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (seq);


--
-- Name: contract_versions contract_versions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.contract_versions
    ADD CONSTRAINT contract_versions_pkey PRIMARY KEY (reference, version);


--
-- Name: contracts contracts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.contracts
    ADD CONSTRAINT contracts_pkey PRIMARY KEY (reference);


--
-- Name: creators creators_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.creators
    ADD CONSTRAINT creators_pkey PRIMARY KEY (creator_id);


--
-- Name: event_file_loads event_file_loads_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.event_file_loads
    ADD CONSTRAINT event_file_loads_pkey PRIMARY KEY (sha256);


--
-- Name: license_workflows license_workflows_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.license_workflows
    ADD CONSTRAINT license_workflows_pkey PRIMARY KEY (asset_id, licensor, expires_on);


--
-- Name: licenses licenses_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.licenses
    ADD CONSTRAINT licenses_pkey PRIMARY KEY (asset_id, licensor);


--
-- Name: payees payees_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payees
    ADD CONSTRAINT payees_pkey PRIMARY KEY (payee_id);


--
-- Name: payout_approvals payout_approvals_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payout_approvals
    ADD CONSTRAINT payout_approvals_pkey PRIMARY KEY (batch_id, approver);


--
-- Name: payout_batches payout_batches_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payout_batches
    ADD CONSTRAINT payout_batches_pkey PRIMARY KEY (batch_id);


--
-- Name: payout_confirmations payout_confirmations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payout_confirmations
    ADD CONSTRAINT payout_confirmations_pkey PRIMARY KEY (file_key);


--
-- Name: payout_holds payout_holds_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payout_holds
    ADD CONSTRAINT payout_holds_pkey PRIMARY KEY (period, payee_id, currency);


--
-- Name: payout_lines payout_lines_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payout_lines
    ADD CONSTRAINT payout_lines_pkey PRIMARY KEY (line_id, batch_id);


--
-- Name: period_fx_rates period_fx_rates_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.period_fx_rates
    ADD CONSTRAINT period_fx_rates_pkey PRIMARY KEY (period, currency);


--
-- Name: royalty_periods royalty_periods_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.royalty_periods
    ADD CONSTRAINT royalty_periods_pkey PRIMARY KEY (period);


--
-- Name: royalty_statement_totals royalty_statement_totals_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.royalty_statement_totals
    ADD CONSTRAINT royalty_statement_totals_pkey PRIMARY KEY (period, payee_id);


--
-- Name: payout_lines_live; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX payout_lines_live ON public.payout_lines USING btree (line_id) WHERE (status <> 'cancelled'::text);


--
-- Name: contracts contracts_creator_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.contracts
    ADD CONSTRAINT contracts_creator_id_fkey FOREIGN KEY (creator_id) REFERENCES public.creators(creator_id);


--
-- Name: payees payees_creator_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payees
    ADD CONSTRAINT payees_creator_id_fkey FOREIGN KEY (creator_id) REFERENCES public.creators(creator_id);


--
-- Name: payout_approvals payout_approvals_batch_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payout_approvals
    ADD CONSTRAINT payout_approvals_batch_id_fkey FOREIGN KEY (batch_id) REFERENCES public.payout_batches(batch_id);


--
-- Name: payout_lines payout_lines_batch_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payout_lines
    ADD CONSTRAINT payout_lines_batch_id_fkey FOREIGN KEY (batch_id) REFERENCES public.payout_batches(batch_id);


--
-- PostgreSQL database dump complete
--

