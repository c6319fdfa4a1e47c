"""The local stack: moto server for S3, SQS and DynamoDB, the Chalice API and the queue worker."""
