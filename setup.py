"""The one compiled part: AvroSerde's C codec.  Optional: without a C compiler the
package still installs, and Avro goes through fastavro alone (streams/schema_registry/avro_plan.py)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("streams.schema_registry._avrofast", ["streams/schema_registry/_avrofast.c"],
                             optional=True)])
