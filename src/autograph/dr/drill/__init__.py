"""The DR drill: a sandbox stack, a dataset and a writer, fault injection, recovery (through
:mod:`autograph.dr.recovery`), measured RTO/RPO, integrity and the reports."""
