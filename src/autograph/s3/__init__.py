"""S3 access: the lean bulk client (SigV4 over keep-alive HTTP/1.1, checked against botocore's
signer in the unit tests) and the boto3 factory for what needs boto3's features."""
