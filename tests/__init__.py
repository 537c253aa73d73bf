"""The test suite, a package: test modules and support modules (fake_sendgrid, golden_emails,
postgres, crash_harness) import each other as ``tests.<name>``, each loaded once."""
